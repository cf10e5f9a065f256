"""Pre-flight: everything about a training run that can be known before its first step, checked in seconds.

``run_checks(cfg, processes)`` returns one ``Check`` per finding (name, ok | warn | FAIL, detail); ``render_table``
prints them. ``zerosearch train --check`` runs them alone (exit 0, or 2 on a failure); every ``zerosearch
train`` runs them first and refuses to start on a failure, with every problem listed at once. Each check reads
config files, tokenizers and corpora, and sends one probe query to each engine that runs elsewhere, with a short
timeout and no retry; no model weights are loaded (an in-process simulator is checked from its files).
docs/training-health.md says what each check means and what to change.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from zerosearch_rl.config import Config, ConfigError, with_overrides
from zerosearch_rl.data import DataError, load_examples
from zerosearch_rl.memory_estimate import (
    DTYPE_BYTES,
    MemoryEstimate,
    checkpoint_bytes,
    engine_bytes,
    estimate_memory,
    per_process_trajectories,
    size_text,
)
from zerosearch_rl.model_shape import (
    CONTEXT_KEYS,
    ModelNotFound,
    ModelShape,
    NotConvertedYet,
    context_length,
    locate_model,
    model_shape,
    read_config,
    weight_files,
)
from zerosearch_rl.net import EndpointError
from zerosearch_rl.protocol import STOP_STRINGS
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.corpus import CorpusError

Status = Literal["ok", "warn", "FAIL"]
#: Advantage estimators whose baseline is the other samples of the same prompt.
GROUP_BASELINES = ("grpo", "rloo")


@dataclass(frozen=True)
class Check:
    """One line of the pre-flight table. ``latency_s`` is a probe's round trip."""

    name: str
    status: Status
    detail: str
    latency_s: float | None = None

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def text(self) -> str:
        """The detail with the probe's latency, if any."""
        return self.detail if self.latency_s is None else f"{self.detail} ({_duration(self.latency_s)})"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


class PreflightFailed(ConfigError):
    """The pre-flight found problems: the message names each failed check and what to change."""


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# ---------------------------------------------------------------- batch arithmetic


def batch_checks(cfg: Config, processes: int) -> list[Check]:
    """The step's prompts split evenly over ``processes`` data-parallel processes, each getting whole groups
    (a prompt with all its ``rollout.n_samples`` samples: the sampler slices prompts), and each process's
    trajectories into ``trainer.mini_batches`` equal optimizer steps, so that every process takes the same number
    of optimizer steps over the same number of trajectories; a group baseline needs two samples or more."""
    t, n, advantage = cfg.trainer, cfg.rollout.n_samples, cfg.algorithm.advantage
    problems = []
    if advantage in GROUP_BASELINES and n < 2:
        problems.append(f"algorithm.advantage={advantage} compares samples of one prompt: rollout.n_samples must be "
                        f">= 2, got {n} (ZeroSearch: 5; or algorithm.advantage=reinforce, whose baseline is the batch)")
    if t.batch_size % processes:
        below = t.batch_size // processes * processes
        options = " or ".join(str(b) for b in (below, below + processes) if b > 0)
        counts = [d for d in _divisors(t.batch_size) if d <= max(8, 2 * processes)]
        problems.append(f"trainer.batch_size={t.batch_size} prompts cannot be split over {processes} processes (each "
                        f"rolls out whole groups of rollout.n_samples={n}); use a multiple of {processes}, e.g. "
                        f"{options}, or run on {', '.join(map(str, counts))} processes")
        return [Check("batch", "FAIL", p) for p in problems]
    mine = t.batch_size // processes * n
    if mine % t.mini_batches:
        where = f" on each of {processes} processes" if processes > 1 else ""
        problems.append(f"trainer.mini_batches={t.mini_batches} must divide the {mine} trajectories of a step{where} "
                        f"(batch_size {t.batch_size} / {processes} x n_samples {n}); valid: "
                        f"{', '.join(map(str, _divisors(mine)))}")
    if problems:
        return [Check("batch", "FAIL", p) for p in problems]
    mini = mine // t.mini_batches
    micro = min(t.micro_batch_size, mini)
    last = f", the last of {mini % micro}" if mini % micro else ""
    each = f"{processes} processes with {mine} each" if processes > 1 else "1 process"
    return [Check("batch", "ok", f"{t.batch_size} prompts x {n} samples = {t.batch_size * n} trajectories a step on "
                                 f"{each}: {t.mini_batches} optimizer step(s) of {mini}, in micro-batches of "
                                 f"{micro}{last}")]


def require_batches(cfg: Config, processes: int) -> None:
    """``batch_checks`` as a guard (``Trainer`` calls it with the real process count): ``ConfigError`` listing
    every problem."""
    problems = [c.detail for c in batch_checks(cfg, processes) if c.failed]
    if problems:
        raise ConfigError(" | ".join(problems))


def failures(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.failed]


# ---------------------------------------------------------------- the whole pre-flight

#: Seconds a probe may take (each engine gets one attempt, no retry).
PROBE_TIMEOUT_S = 5.0
#: Tokens of the probe page asked of a simulator server (enough for a document or two).
PROBE_PAGE_TOKENS = 64
#: Prompts rendered and tokenized to find the longest (the first ones of the training data).
PROMPTS_CHECKED = 2000
#: Memory or disk use past this share of what is present is a warning.
WARN_SHARE = 0.8


def world_size() -> int:
    """The process count torchrun set (``WORLD_SIZE``), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Preflight:
    """The checks in order; later ones read what earlier ones found (the model's config, the tokenizer)."""

    def __init__(self, cfg: Config, processes: int) -> None:
        self.cfg, self.processes = cfg, processes
        self.examples: list[Any] = []
        self.folder: Path | None = None
        self.model_config: Any = None
        self.shape: ModelShape | None = None
        self.tokenizer: Any = None
        self.tokenizer_source = ""
        self.longest_prompt: int | None = None  # of the prompts measured (the memory estimate's prompt length)
        self.simulator_bytes = 0

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], list[Check]], bool]] = [  # (name, check, needs the tokenizer)
            ("batch", lambda: batch_checks(self.cfg, self.processes), False), ("data", self.data, False),
            ("model", self.model, False), ("tokenizer", self.tokenizer_checks, False),
            ("chat template", self._chat_template, True), ("stop strings", self._stop_strings, True),
            ("prompts", self._prompts, True), ("context", self.context, False),
            ("search engine", self.engines, False), ("memory", self.memory, False), ("disk", self.disk, False)]
        out: list[Check] = []
        for name, check, needs_tokenizer in steps:
            if needs_tokenizer and self.tokenizer is None:
                out.append(Check(name, "warn", "not checked: no tokenizer (see its line)"))
                continue
            try:
                out += check()
            except Exception as exc:  # a check that breaks is a finding, never a crash of the table
                out.append(Check(name, "FAIL", f"the check itself failed: {_error(exc)}"))
        return out

    # ------------------------------------------------------------ data

    def data(self) -> list[Check]:
        d, t = self.cfg.data, self.cfg.trainer
        if not d.train_files:
            return [Check("data", "FAIL", "data.train_files is empty: give the training questions "
                                          "(ZeroSearch/Search-R1 parquet or JSONL files)")]
        try:
            self.examples = load_examples(d.train_files, d.sources, d.limit)
        except DataError as exc:
            return [Check("data", "FAIL", str(exc))]
        if not self.examples:
            return [Check("data", "FAIL", f"no training questions in {', '.join(d.train_files)} with data.sources="
                                          f"{list(d.sources)}; valid sources are the files' data_source values")]
        out = [Check("data", "ok", f"{len(self.examples)} training questions from {len(d.train_files)} file(s)")]
        if len(self.examples) < t.batch_size:
            out[0] = Check("data", "warn", f"{out[0].detail}, fewer than trainer.batch_size={t.batch_size}: every step "
                                           f"repeats questions")
        if self.cfg.model.prompt_template == "data":
            bare = [e.id for e in self.examples if not e.metadata.get("prompt")]
            if bare:
                out.append(Check("data", "FAIL", f"model.prompt_template=data takes each row's `prompt` messages, and "
                                                 f"{len(bare)} of {len(self.examples)} questions have none (first: "
                                                 f"{bare[0]!r}); use model.prompt_template=own or search_r1"))
        if t.eval_every:
            if not d.eval_files:
                out.append(Check("data", "FAIL", f"trainer.eval_every={t.eval_every} needs data.eval_files (or "
                                                 f"trainer.eval_every=0)"))
            else:
                try:
                    n = len(load_examples(d.eval_files, d.sources, self.cfg.eval.limit))
                    out.append(Check("data", "ok" if n else "FAIL", f"{n} evaluation questions from "
                                                                   f"{len(d.eval_files)} file(s)"))
                except DataError as exc:
                    out.append(Check("data", "FAIL", str(exc)))
        return out

    # ------------------------------------------------------------ model and tokenizer

    def model(self) -> list[Check]:
        m = self.cfg.model
        try:
            self.folder = locate_model(m.policy)
        except NotConvertedYet as exc:
            return [Check("model", "warn", f"model.policy={m.policy}: {exc}")]
        except ModelNotFound as exc:
            return [Check("model", "FAIL", f"model.policy: {exc}")]
        where = str(self.folder) if self.folder is not None else f"{m.policy} (built in)"
        try:
            self.model_config = read_config(self.folder, m.trust_remote_code)
        except Exception as exc:  # transformers raises several kinds for a config it cannot read
            return [Check("model", "FAIL", f"model.policy: {where}/config.json cannot be read: {_error(exc)}")]
        out = []
        weights = ""
        if self.folder is not None:
            files = weight_files(self.folder)
            if not files:
                out.append(Check("model", "FAIL", f"model.policy: no weights file in {where} (model.safetensors, "
                                                  f"pytorch_model.bin or their shards)"))
            size = sum(f.stat().st_size for f in files)
            weights = f"; weights: {len(files)} file(s), {size_text(size)} (not opened)"
        try:
            self.shape = model_shape(self.model_config, m.lora_rank, m.lora_target_modules, m.trust_remote_code)
        except Exception as exc:  # an architecture transformers cannot build from its config alone
            out.append(Check("model", "warn", f"{where}: parameters not counted ({_error(exc)}): memory and disk "
                                              f"are not estimated"))
            return out
        kind = getattr(self.model_config, "model_type", "?")
        lora = (f", LoRA rank {m.lora_rank}: {self.shape.lora_parameters / 1e6:.2f}M trained" if m.lora_rank else "")
        if not out:
            out.append(Check("model", "ok", f"{where}: {kind}, {self.shape.parameters / 1e6:.1f}M parameters (from "
                                            f"config.json){lora}{weights}"))
        return out

    def tokenizer_checks(self) -> list[Check]:
        m = self.cfg.model
        if self.model_config is None:
            return [Check("tokenizer", "warn", "not checked: the model's config could not be read")]
        source = (m.tokenizer or str(self.folder)) if self.folder is not None else m.policy
        try:
            if self.folder is None:  # tiny-random's tokenizer is built in (load_policy ignores model.tokenizer)
                from zerosearch_rl.tiny_models import byte_tokenizer

                self.tokenizer = byte_tokenizer()
            else:
                from transformers import AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True,
                                                               trust_remote_code=m.trust_remote_code)
        except Exception as exc:  # tokenizer loading fails in many ways (missing files, sentencepiece, ...)
            return [Check("tokenizer", "FAIL", f"the tokenizer of {source} does not load: {_error(exc)}"
                                               f"{'' if m.tokenizer else ' (model.tokenizer can name another)'}")]
        self.tokenizer_source = source
        return [self._ids(source)]

    def _ids(self, source: str) -> Check:
        from zerosearch_rl.generation.base import end_of_sequence_ids

        tok = self.tokenizer
        generation = None
        if self.folder is not None and (self.folder / "generation_config.json").is_file():
            from transformers import GenerationConfig

            generation = GenerationConfig.from_pretrained(self.folder)
        eos = sorted(end_of_sequence_ids(tok, generation))
        if tok.pad_token_id is None and tok.eos_token_id is None:
            return Check("tokenizer", "FAIL", f"{source}: the tokenizer has neither a pad nor an EOS token, so rows "
                                              f"cannot be padded; set pad_token in its tokenizer_config.json")
        rows = self.shape.vocab if self.shape is not None else None
        if rows is not None and len(tok) > rows:
            return Check("tokenizer", "FAIL", f"{source}: {len(tok)} tokens, but the model's embedding has {rows} rows "
                                              f"(vocab_size in config.json): ids past {rows - 1} cannot be embedded; "
                                              f"use the model's own tokenizer (model.tokenizer empty)")
        pad = (f"pad {tok.pad_token!r} = {tok.pad_token_id}" if tok.pad_token_id is not None
               else f"no pad token (padded with the EOS, {tok.eos_token!r})")
        return Check("tokenizer", "ok", f"{source}: {len(tok)} tokens; {pad}; a turn ends at token id(s) "
                                        f"{', '.join(map(str, eos)) or 'none (stop strings and budgets only)'}")

    def _chat_template(self) -> list[Check]:
        from zerosearch_rl.protocol import build_prompt

        m, source = self.cfg.model, self.tokenizer_source
        has = getattr(self.tokenizer, "chat_template", None) is not None
        if m.prompt_style == "chat" and not has:
            return [Check("chat template", "FAIL", f"model.prompt_style=chat renders prompts through the tokenizer's "
                                                  f"chat template, and {source} has none (no chat_template in "
                                                  f"tokenizer_config.json, no chat_template.jinja); use "
                                                  f"model.prompt_style=base (the plain-text instruction), or a "
                                                  f"tokenizer that has one (model.tokenizer)")]
        if m.prompt_style == "base" or not has:
            why = "model.prompt_style=base" if m.prompt_style == "base" else \
                "the tokenizer has none, so model.prompt_style=auto writes the plain-text instruction"
            return [Check("chat template", "ok", f"not used ({why})")]
        example = self.examples[0] if self.examples else None
        try:
            build_prompt(example.question if example else "Who wrote Hamlet?", self.tokenizer, m.prompt_style,
                         m.prompt_template, example.metadata.get("prompt") if example else None)
        except Exception as exc:  # jinja raises its own errors for a template that does not render
            return [Check("chat template", "FAIL", f"the chat template of {source} does not render the prompt: "
                                                  f"{_error(exc)}; use model.prompt_style=base or another tokenizer")]
        return [Check("chat template", "ok", f"used (model.prompt_style={m.prompt_style}) and renders the prompt")]

    def _stop_strings(self) -> list[Check]:
        tok, found, bad = self.tokenizer, [], []
        for s in STOP_STRINGS:
            ids = list(tok(s, add_special_tokens=False)["input_ids"])
            back = tok.decode(ids, skip_special_tokens=False)
            if s not in back or (tok.unk_token_id is not None and tok.unk_token_id in ids):
                bad.append(f"{s!r} (ids {ids} decode to {back!r})")
            found.append(f"{s} {len(ids)} tokens")
        if bad:
            return [Check("stop strings", "FAIL", f"{', '.join(bad)} do not survive the tokenizer, so a turn never "
                                                 f"stops at them; use the model's own tokenizer (model.tokenizer)")]
        return [Check("stop strings", "ok", f"{', '.join(found)}; each decodes back")]

    def _prompts(self) -> list[Check]:
        if not self.examples:
            return []
        from zerosearch_rl.rollout import Rollout
        from zerosearch_rl.search.fake import FakeBackend

        m, r = self.cfg.model, self.cfg.rollout
        if m.prompt_style == "chat" and getattr(self.tokenizer, "chat_template", None) is None:
            return []  # the chat template's line says why no prompt can be rendered
        # the rollout's own tokenization, with no limit, to find the longest prompt
        rollout = Rollout(self.tokenizer, FakeBackend(), dataclasses.replace(r, max_prompt_tokens=1 << 30),
                          self.cfg.trainer.seed, m.prompt_style, m.prompt_template)
        sample = [ex for ex in self.examples if m.prompt_template != "data" or ex.metadata.get("prompt")]
        sample = sample[:PROMPTS_CHECKED]  # (data's line names questions without their own prompt)
        if not sample:
            return []
        lengths = [(len(rollout.prompt_ids(ex)), ex.id) for ex in sample]
        longest, which = max(lengths)
        self.longest_prompt = longest
        over = sum(n > r.max_prompt_tokens for n, _ in lengths)
        scope = (f"the first {len(sample)} of {len(self.examples)} prompts" if len(sample) < len(self.examples)
                 else f"{len(sample)} prompts")
        if over:
            return [Check("prompts", "FAIL", f"{over} of {scope} are longer than rollout.max_prompt_tokens="
                                             f"{r.max_prompt_tokens} (longest: {longest} tokens, question {which!r}); "
                                             f"use rollout.max_prompt_tokens={longest} or more")]
        return [Check("prompts", "ok", f"longest of {scope}: {longest} tokens (rollout.max_prompt_tokens="
                                       f"{r.max_prompt_tokens})")]

    # ------------------------------------------------------------ lengths

    def tokens(self) -> tuple[int, int, str]:
        """(the longest sequence, the longest response, how the response's bound comes about)."""
        r = self.cfg.rollout
        turns = r.max_turns + int(r.final_answer_turn)
        budget = turns * r.max_new_tokens + (turns - 1) * r.max_obs_tokens
        response = min(r.max_response_tokens, budget)
        how = (f"rollout.max_response_tokens={r.max_response_tokens}" if response < budget else
               f"{turns} turn(s) x rollout.max_new_tokens={r.max_new_tokens} + {turns - 1} observation(s) x "
               f"rollout.max_obs_tokens={r.max_obs_tokens}")
        return r.max_prompt_tokens + response, response, how

    def context(self) -> list[Check]:
        if self.model_config is None:
            return [Check("context", "warn", "not checked: the model's config could not be read")]
        r = self.cfg.rollout
        need, response, how = self.tokens()
        ctx, key = context_length(self.model_config)
        vllm = (" (and vLLM's max_model_len: the trainer starts its engine at the model's own limit)"
                if r.generator == "vllm" else "")
        if ctx is None:
            return [Check("context", "warn", f"config.json states no context length ({', '.join(CONTEXT_KEYS)}): "
                                             f"the {need} tokens of an episode are not checked against it")]
        if need > ctx:
            fixes = [f"rollout.max_response_tokens={ctx - r.max_prompt_tokens}"] if ctx > r.max_prompt_tokens else []
            if ctx > response:
                fixes.append(f"rollout.max_prompt_tokens={ctx - response}")
            return [Check("context", "FAIL", f"rollout.max_prompt_tokens={r.max_prompt_tokens} + a response of up to "
                                             f"{response} tokens ({how}) = {need} tokens, past the model's context of "
                                             f"{ctx} ({key} in config.json){vllm}; use "
                                             f"{' or '.join(fixes) or 'a model with a longer context'}")]
        return [Check("context", "ok", f"prompt {r.max_prompt_tokens} + response {response} ({how}) = {need} "
                                       f"tokens, within the model's {ctx} ({key}){vllm}")]

    # ------------------------------------------------------------ engines

    def engines(self) -> list[Check]:
        t = self.cfg.trainer
        out = self._engine_rows(self.cfg, "search engine")
        if t.eval_every and t.eval_search:
            out += self._engine_rows(with_overrides(self.cfg, t.eval_search), "eval engine")
        elif t.eval_every:
            out.append(Check("eval engine", "ok", "the training engine (trainer.eval_search is empty)"))
        return out

    def _engine_rows(self, cfg: Config, label: str) -> list[Check]:
        s = cfg.search
        if s.backend == "mixture":
            return [*self._engine(cfg, s.mixture_real, f"{label} (mixture: real)"),
                    *self._engine(cfg, s.mixture_simulator, f"{label} (mixture: simulator)")]
        return self._engine(cfg, s.backend, label)

    def _engine(self, cfg: Config, name: str, label: str) -> list[Check]:
        from zerosearch_rl.config import SIMULATED_ENGINES

        if name == "serpapi":
            from zerosearch_rl.search.web import KEY_ENVS

            found = next((k for k in KEY_ENVS if os.environ.get(k)), None)
            if found is None:
                return [Check(label, "FAIL", f"serpapi: no API key in the environment variable "
                                             f"{' or '.join(KEY_ENVS)}")]
            return [Check(label, "ok", f"serpapi: key found in {found} (the check does not call SerpAPI)")]
        if name in SIMULATED_ENGINES:
            if cfg.simulator.client == "openai":
                return self._simulator_servers(cfg, name, label)
            return [self._in_process_simulator(cfg, label)]
        if name == "remote":
            if not cfg.search.urls:
                return [Check(label, "FAIL", "search.backend=remote needs search.urls (e.g. "
                                             "search.urls=[http://127.0.0.1:8000])")]
            rows = [self._probe(dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, urls=(url,))), name,
                                label, f"remote {url}") for url in cfg.search.urls]
            return _fail_over(rows)
        return [self._probe(cfg, name, label, name)]

    def _probe(self, cfg: Config, name: str, label: str, what: str) -> Check:
        """One probe query through ``build_backend``: one attempt, a short timeout, no cache, errors raised."""
        from zerosearch_rl.search import build_backend

        s, sim = cfg.search, cfg.simulator
        probe_cfg = dataclasses.replace(
            cfg, search=dataclasses.replace(s, timeout_s=min(s.timeout_s, PROBE_TIMEOUT_S), max_retries=0,
                                            on_error="raise", cache="none"),
            simulator=dataclasses.replace(sim, timeout_s=min(sim.timeout_s, PROBE_TIMEOUT_S), max_retries=0,
                                          max_new_tokens=min(sim.max_new_tokens, PROBE_PAGE_TOKENS)))
        start = time.perf_counter()
        try:
            backend = build_backend(probe_cfg, name)
            built = time.perf_counter() - start
            try:
                start = time.perf_counter()
                (docs,) = backend.search([self._probe_request()])
            finally:
                backend.close()
        except (SearchError, EndpointError, CorpusError, ConfigError, ImportError, OSError, ValueError) as exc:
            return Check(label, "FAIL", f"{what}: {_error(exc) if not isinstance(exc, CorpusError) else exc}",
                         time.perf_counter() - start)
        latency = time.perf_counter() - start
        ready = f", ready in {_duration(built)}" if built >= 0.5 else ""
        if not docs:
            return Check(label, "warn", f"{what}: no document for the probe query{ready}", latency)
        return Check(label, "ok", f"{what}: {len(docs)} document(s) for a probe query{ready}", latency)

    def _probe_request(self) -> SearchRequest:
        """The first training question as the probe's query (what the engine will be asked), or a stock one."""
        if self.examples:
            ex = self.examples[0]
            return SearchRequest(query=ex.question, question=ex.question, answers=ex.answers, noisy=False,
                                 sample_id="preflight")
        return SearchRequest(query="capital of France", question="What is the capital of France?",
                             answers=("Paris",), noisy=False, sample_id="preflight")

    def _simulator_servers(self, cfg: Config, name: str, label: str) -> list[Check]:
        import httpx

        sim = cfg.simulator
        if not sim.base_urls:
            return [Check(label, "FAIL", "simulator.client=openai needs simulator.base_urls (e.g. "
                                         "simulator.base_urls=[http://127.0.0.1:30000/v1])")]
        headers = {}
        if sim.api_key_env:
            key = os.environ.get(sim.api_key_env)
            if not key:
                return [Check(label, "FAIL", f"simulator.api_key_env={sim.api_key_env!r} names an environment "
                                             f"variable that is not set")]
            headers["Authorization"] = f"Bearer {key}"
        rows = []
        for url in sim.base_urls:
            start = time.perf_counter()
            try:
                reply = httpx.get(f"{url.rstrip('/')}/models", headers=headers, timeout=PROBE_TIMEOUT_S)
                reply.raise_for_status()
                served = [str(m["id"]) for m in reply.json()["data"]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                rows.append(Check(label, "FAIL", f"simulator {url}: GET /models: {_error(exc)}",
                                  time.perf_counter() - start))
                continue
            if not served or (sim.model and sim.model not in served):
                rows.append(Check(label, "FAIL", f"simulator {url} serves {', '.join(served) or 'no model'}, not "
                                                 f"simulator.model={sim.model!r}; set simulator.model to one of them"))
                continue
            model = sim.model or served[0]
            one = dataclasses.replace(cfg, simulator=dataclasses.replace(sim, base_urls=(url,), model=model))
            probe = self._probe(one, name, label, f"simulator {url} serves {model}; a {PROBE_PAGE_TOKENS}-token page")
            rows.append(probe)
        return _fail_over(rows)

    def _in_process_simulator(self, cfg: Config, label: str) -> Check:
        sim = cfg.simulator
        if not sim.model:
            return Check(label, "FAIL", f"simulator.model is empty: simulator.client={sim.client} needs the "
                                        f"simulator's model folder")
        try:
            folder = locate_model(sim.model)
            config = read_config(folder)
        except ModelNotFound as exc:
            return Check(label, "FAIL", f"simulator.model: {exc}")
        if folder is not None and not weight_files(folder):
            return Check(label, "FAIL", f"simulator.model: no weights file in {folder}")
        params = model_shape(config).parameters
        memory = self._device()
        self.simulator_bytes = engine_bytes(sim.client, params, 2, memory[0], memory[2])
        return Check(label, "ok", f"in-process simulator {folder or sim.model} ({params / 1e6:.0f}M parameters, "
                                  f"simulator.client={sim.client}): config read; its weights load when training starts")

    # ------------------------------------------------------------ memory and disk

    def _device(self) -> tuple[str, int, int | None]:
        """(cpu | cuda, bytes available to this process's share, the GPU's total or None)."""
        import torch

        from zerosearch_rl.distributed import local_rank

        device = self.cfg.model.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info(local_rank())
            return "cuda", int(free), int(total)
        import psutil

        return "cpu", int(psutil.virtual_memory().available), None

    def _lengths(self) -> tuple[int, int, str]:
        """(prompt, whole sequence, what they are) for the memory estimate: the longest prompt measured (the
        configured limit when none could be), then the longest response the rollout settings allow."""
        _, response, _ = self.tokens()
        limit = self.cfg.rollout.max_prompt_tokens
        prompt = min(self.longest_prompt, limit) if self.longest_prompt is not None else limit
        what = ("the longest prompt measured" if self.longest_prompt is not None else "rollout.max_prompt_tokens")
        return prompt, prompt + response, f"{what} {prompt} + response {response}"

    def _estimate(self, cfg: Config, shape: ModelShape, device: str, total: int | None) -> MemoryEstimate:
        prompt, tokens, _ = self._lengths()
        return estimate_memory(cfg, shape, processes=self.processes, prompt_tokens=prompt, tokens=tokens,
                               device=device, device_total=total, simulator=self.simulator_bytes)

    def memory(self) -> list[Check]:
        cfg = self.cfg
        if cfg.trainer.memory_check == "skip":
            return [Check("memory", "ok", "not checked (trainer.memory_check=skip)")]
        if self.shape is None:
            return [Check("memory", "warn", "not estimated: the model's parameters could not be counted")]
        device, available, total = self._device()
        est = self._estimate(cfg, self.shape, device, total)
        sharing = 1 if device == "cuda" else int(os.environ.get("LOCAL_WORLD_SIZE", self.processes))
        need = est.peak * sharing
        what = (f"this process's GPU has {size_text(available)} free of {size_text(total or 0)}" if device == "cuda"
                else f"{size_text(available)} of RAM available" + (f" to {sharing} processes" if sharing > 1 else ""))
        micro = min(cfg.trainer.micro_batch_size,
                    max(1, per_process_trajectories(cfg, self.processes) // cfg.trainer.mini_batches))
        _, tokens, lengths = self._lengths()
        detail = (f"estimate per process at micro-batch {micro} x {tokens} tokens ({lengths}): {est.describe()}; "
                  f"{what}")
        if need <= WARN_SHARE * available:
            return [Check("memory", "ok", detail)]
        fixes = self._memory_fixes(device, total, available / sharing)
        detail += f"; {fixes}" if fixes else ""
        status: Status = "warn" if need <= available or cfg.trainer.memory_check == "warn" else "FAIL"
        return [Check("memory", status, detail + ("" if need <= available else
                                                  " (trainer.memory_check=warn starts anyway)"))]

    def _memory_fixes(self, device: str, total: int | None, budget: float) -> str:
        """What to change, each with its estimate: LoRA, a smaller micro-batch, gradient checkpointing, no
        reference copy."""
        cfg, shape = self.cfg, self.shape
        assert shape is not None
        m, t = cfg.model, cfg.trainer
        tries: list[tuple[str, Config, ModelShape]] = []
        if not m.lora_rank and t.strategy != "fsdp" and cfg.rollout.generator != "vllm":
            lora = model_shape(self.model_config, 16, m.lora_target_modules, m.trust_remote_code)
            tries.append(("model.lora_rank=16", with_overrides(cfg, ["model.lora_rank=16"]), lora))
        if t.micro_batch_size > 1:
            smaller = ["trainer.micro_batch_size=1"] if t.micro_batch_size <= 2 else \
                [f"trainer.micro_batch_size={t.micro_batch_size // 2}", "trainer.micro_batch_size=1"]
            tries += [(o, with_overrides(cfg, [o]), shape) for o in smaller]
        if not m.gradient_checkpointing:
            tries.append(("model.gradient_checkpointing=true",
                          with_overrides(cfg, ["model.gradient_checkpointing=true"]), shape))
        if cfg.algorithm.kl_coef > 0 and not m.lora_rank:
            tries.append(("algorithm.kl_coef=0 (no reference copy)", with_overrides(cfg, ["algorithm.kl_coef=0"]),
                          shape))
        found = [(o, self._estimate(c, s, device, total).peak) for o, c, s in tries]
        if not found:
            return ""
        text = "; ".join(f"{o}: {size_text(p)}{' (fits)' if p <= budget else ''}" for o, p in found)
        return f"estimates with one change: {text} (several can be combined)"

    def disk(self) -> list[Check]:
        cfg, t = self.cfg, self.cfg.trainer
        out = Path(t.output_dir)
        root = out
        while not root.exists() and root != root.parent:
            root = root.parent
        if not root.is_dir():
            return [Check("disk", "FAIL", f"trainer.output_dir={t.output_dir}: {root} is a file, not a folder")]
        if not os.access(root, os.W_OK):
            return [Check("disk", "FAIL", f"trainer.output_dir={t.output_dir}: {root} is not writable")]
        if self.shape is None:
            return [Check("disk", "warn", "not estimated: the model's parameters could not be counted")]
        s = DTYPE_BYTES[cfg.model.dtype]
        each = checkpoint_bytes(cfg, self.shape)
        final = self.shape.parameters * s
        engine = final * int(os.environ.get("LOCAL_WORLD_SIZE", self.processes)) if \
            cfg.rollout.generator == "vllm" else 0
        need = (t.keep_checkpoints + 1) * each + final + engine
        free = shutil.disk_usage(root).free
        copies = f" + vLLM start copies {size_text(engine)}" if engine else ""
        detail = (f"{t.keep_checkpoints} checkpoint(s) (trainer.keep_checkpoints) and one being written, "
                  f"{size_text(each)} each, + final/ {size_text(final)}{copies} = {size_text(need)}; "
                  f"{size_text(free)} free under {root}")
        if need <= WARN_SHARE * free:
            return [Check("disk", "ok", detail)]
        fix = ("; lower trainer.keep_checkpoints, use LoRA (model.lora_rank: checkpoints hold the adapters) or "
               "another trainer.output_dir")
        return [Check("disk", "warn" if need <= free else "FAIL", detail + fix)]


def _fail_over(rows: list[Check]) -> list[Check]:
    """Several URLs fail over to each other: a dead one is a warning while another answers."""
    if any(not r.failed for r in rows):
        return [dataclasses.replace(r, status="warn", detail=f"{r.detail} (the other URLs take over)")
                if r.failed else r for r in rows]
    return rows




def run_checks(cfg: Config, processes: int | None = None) -> list[Check]:
    """Every check of the pre-flight for ``processes`` data-parallel processes (default: ``world_size()``)."""
    return _Preflight(cfg, processes or world_size()).run()


def render_table(checks: Sequence[Check], processes: int) -> str:
    """The pre-flight table: one line per check (name, status, detail), then a summary line."""
    width = max(len(c.name) for c in checks)
    lines = [f"pre-flight ({processes} process{'es' if processes > 1 else ''})",
             f"{'check':<{width}}  status  detail"]
    lines += [f"{c.name:<{width}}  {c.status:<6}  {c.text()}" for c in checks]
    bad, warned = len(failures(checks)), sum(c.status == "warn" for c in checks)
    lines.append(f"{bad} failed, {warned} warning(s), {len(checks) - bad - warned} ok")
    return "\n".join(lines)


def preflight(cfg: Config, processes: int | None = None, show: bool = True) -> list[Check]:
    """Run the checks, print the table when ``show``, and raise ``PreflightFailed`` listing every failure."""
    count = processes or world_size()
    checks = run_checks(cfg, count)
    if show:
        print(render_table(checks, count), flush=True)
    bad = failures(checks)
    if bad:
        raise PreflightFailed(f"pre-flight: {len(bad)} problem(s), nothing loaded or written: "
                              + " | ".join(f"{c.name}: {c.detail}" for c in bad))
    return checks
