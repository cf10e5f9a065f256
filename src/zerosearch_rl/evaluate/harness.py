"""The evaluation harness: every method on every question, batched, resumable, nothing dropped.

``evaluate`` runs each method over the examples in batches of ``eval.batch_size`` (the last batch may be
smaller) and appends each finished batch to ``traces.jsonl`` at once. Run again on the same folder with
the same settings, it skips the (method, example id) pairs already written, so an interrupted
evaluation continues where it stopped and no item is written twice. Changing a setting that changes
results (model, engine, prompts, sampling) is refused instead of mixing two runs in one file.

Scores per item (``ITEM_METRICS``), all on the response only: strict ``exact_match`` and ``cover_em``
(gold is a substring of the answer: ZeroSearch's "EM") of ``reward``, SQuAD ``f1`` (ZeroSearch's F1, never
with ``trainer.f1_yes_no_rule``), ``format_valid`` (``check_format``),
``answered``, ``searches``, ``answer_words`` and ``generated_tokens`` (tokens the model sampled).
``response_cover_em`` is cover-EM of the model's whole text (documents removed), whether or not it used
the answer tags: small models often answer in prose, and this shows whether they knew the answer.
``answer_in_documents`` is whether any document the engine returned contains a gold answer
(``reward.answer_in_documents``: cover-EM of its title and text):
the engine's share of the work, whatever the model made of it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from zerosearch_rl import console
from zerosearch_rl.config import EVAL_METHODS, Config, ConfigError, config_to_dict
from zerosearch_rl.evaluate.methods import EvalContext, get_method
from zerosearch_rl.evaluate.report import (
    EVAL_CONFIG_FILE,
    ITEM_METRICS,
    OVERALL,
    TRACES_FILE,
    append_traces,
    read_json,
    read_traces,
    write_json,
    write_outputs,
)
from zerosearch_rl.generation.base import TokenGenerator
from zerosearch_rl.records import Document, QAExample, SearchRequest, Trajectory
from zerosearch_rl.reward import (
    answer_in_documents,
    check_format,
    cover_em,
    exact_match,
    extract_answer,
    f1,
    without_information,
)
from zerosearch_rl.search.base import CountingBackend, SearchBackend

# Settings that do not change any item's result: a resumed run may differ in these.
_FREE_SETTINGS = {("eval", "batch_size"), ("eval", "limit"), ("eval", "methods"), ("eval", "output_dir"),
                  ("eval", "name"), ("eval", "threads"), ("data", "limit"), ("eval", "policy_concurrency"),
                  ("eval", "policy_timeout_s"), ("eval", "policy_max_retries")}


class RecordingBackend(CountingBackend):
    """Passes searches through and keeps, per sample id, each query with the documents it got."""

    def __init__(self, inner: SearchBackend) -> None:
        super().__init__()
        self.inner, self.name = inner, inner.name
        self.log: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        pages = self.inner.search(requests)
        for request, docs in zip(requests, pages, strict=True):
            self.log[request.sample_id].append({"query": request.query, "documents": [
                {"id": d.id, "title": d.title, "text": d.text, "score": d.score} for d in docs]})
        return pages

    def take(self, sample_id: str) -> list[dict[str, Any]]:
        return self.log.pop(sample_id, [])

    def metrics(self) -> dict[str, float]:
        return self.inner.metrics()

    def close(self) -> None:
        self.inner.close()


def item_trace(method: str, ex: QAExample, traj: Trajectory, searches: list[dict[str, Any]],
               tokenizer: Any) -> dict[str, Any]:
    """One line of ``traces.jsonl``: the full text with its tags, the documents, every score."""
    response = traj.response_text
    own = traj.policy_text  # what is scored: the policy's words, never a document's
    answer = extract_answer(own)
    scored = answer or ""
    scores = {
        "exact_match": exact_match(scored, ex.answers), "cover_em": cover_em(scored, ex.answers),
        "f1": f1(scored, ex.answers), "response_cover_em": cover_em(without_information(own), ex.answers),
        "answer_in_documents": float(answer_in_documents(
            [Document(**d) for page in searches for d in page["documents"]], ex.answers)),
        "format_valid": float(check_format(own).valid),
        "answered": float(answer is not None), "searches": traj.metrics.get("searches", 0.0),
        "answer_words": float(len(scored.split())), "generated_tokens": traj.metrics.get("policy_tokens", 0.0),
    }
    prompt = tokenizer.decode(traj.input_ids[: traj.prompt_length], skip_special_tokens=False)
    return {"method": method, "id": ex.id, "source": ex.source, "question": ex.question,
            "answers": list(ex.answers), "prediction": answer, "scores": scores, "prompt": prompt,
            "response": response, "searches": searches, "episode": traj.metrics}


def summarize(traces: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {source or "overall": {metric: mean, "n": items}}}``; "overall" weighs every item once."""
    groups: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for t in traces:
        groups[t["method"]][t["source"]].append(t["scores"])
        groups[t["method"]][OVERALL].append(t["scores"])
    out: dict[str, dict[str, dict[str, float]]] = {}
    for method, by_source in groups.items():
        out[method] = {}
        for source in [*sorted(s for s in by_source if s != OVERALL), OVERALL]:
            rows = by_source[source]
            out[method][source] = {m: mean(r[m] for r in rows) for m in ITEM_METRICS} | {"n": float(len(rows))}
    return out


@dataclass(frozen=True)
class EvalReport:
    """The outcome of ``evaluate``: scores per method and source, and where everything was written."""

    name: str
    results: dict[str, dict[str, dict[str, float]]]
    out_dir: Path
    items: int
    new_items: int
    seconds: float

    def score(self, method: str, metric: str = "exact_match", source: str = OVERALL) -> float:
        return self.results[method][source][metric]


def _identity(cfg: Config) -> dict[str, dict[str, Any]]:
    raw = config_to_dict(cfg)
    return {s: {k: v for k, v in fields.items() if (s, k) not in _FREE_SETTINGS} for s, fields in raw.items()}


def _check_resumable(out: Path, cfg: Config, fresh: bool) -> None:
    path, identity = out / EVAL_CONFIG_FILE, _identity(cfg)
    if fresh:
        for name in (TRACES_FILE, EVAL_CONFIG_FILE):
            (out / name).unlink(missing_ok=True)
    elif path.is_file():
        before = read_json(path)
        changed = [f"{s}.{k}" for s in identity for k in identity[s] if before.get(s, {}).get(k) != identity[s][k]]
        if changed:
            raise ConfigError(f"{out} holds an evaluation with other settings ({', '.join(changed[:6])}); "
                              f"choose another eval.output_dir or start over with --fresh")
    write_json(path, identity)


def as_generator(policy: Any, tokenizer: Any) -> TokenGenerator:
    """A ``TokenGenerator`` as is; a Hugging Face model wrapped in ``HFGenerator`` (stopping at our tags)."""
    import torch

    if isinstance(policy, torch.nn.Module):
        from zerosearch_rl.generation.transformers import HFGenerator
        from zerosearch_rl.protocol import STOP_STRINGS

        return HFGenerator(policy, tokenizer, STOP_STRINGS)
    if not isinstance(policy, TokenGenerator):
        raise TypeError(f"policy must be a torch model or a TokenGenerator, got {type(policy).__name__}")
    return policy


def evaluate(policy: Any, tokenizer: Any, backend: SearchBackend, examples: Sequence[QAExample],
             methods: Sequence[str], cfg: Config, out_dir: str | Path, *, name: str = "", fresh: bool = False,
             progress: bool = True) -> EvalReport:
    """Evaluate ``policy`` (a torch causal LM or a ``TokenGenerator``) with each method on ``examples``.

    Writes ``traces.jsonl``, ``summary.json``, ``table.md`` and ``chart.png`` into ``out_dir``; resumes
    a run found there (``fresh=True`` starts over). Sampling, prompt style, turn and token budgets come
    from ``cfg.eval``, ``cfg.model`` and ``cfg.rollout``.
    """
    runners = {m: get_method(m) for m in dict.fromkeys(methods)}
    if not runners:
        raise ConfigError(f"eval.methods is empty; valid: {', '.join(EVAL_METHODS)}")
    if not examples:
        raise ConfigError("no questions to evaluate: check data.eval_files, data.sources and eval.limit")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(out, cfg, fresh)
    done = {(t["method"], t["id"]) for t in read_traces(out / TRACES_FILE)}
    recorder = RecordingBackend(backend)
    e = cfg.eval
    ctx = EvalContext.from_config(cfg, as_generator(policy, tokenizer), tokenizer, recorder)
    todo = {m: [ex for ex in examples if (m, ex.id) not in done] for m in runners}
    total = sum(len(v) for v in todo.values())
    start = time.perf_counter()
    with console.progress("eval", total, show=progress and total > 0) as bar:
        for method, pending in todo.items():
            for i in range(0, len(pending), e.batch_size):
                batch = pending[i : i + e.batch_size]
                bar.advance(0, info=method)
                trajectories = runners[method].run(ctx, batch)
                append_traces(out / TRACES_FILE, [
                    item_trace(method, ex, traj, recorder.take(traj.sample_id), tokenizer)
                    for ex, traj in zip(batch, trajectories, strict=True)])
                bar.advance(len(batch), info=f"{method}  {bar.speed or 0:.2f} q/s")
    wanted = {ex.id for ex in examples}
    traces = [t for t in read_traces(out / TRACES_FILE) if t["method"] in runners and t["id"] in wanted]
    results = summarize(traces)
    label = name or e.name or cfg.model.policy or "model"
    seconds = time.perf_counter() - start
    write_outputs(out, label, results, config_to_dict(cfg), examples, seconds)
    return EvalReport(label, results, out, len(traces), total, seconds)


def evaluate_config(cfg: Config, *, fresh: bool = False, progress: bool = True) -> EvalReport:
    """``zerosearch eval``: the questions of ``data.eval_files``, the policy and engine of ``cfg``, every
    method of ``eval.methods``, written to ``eval.output_dir``. The engine is built only when a method
    searches (direct and cot alone need none)."""
    from zerosearch_rl.data import load_examples
    from zerosearch_rl.evaluate.policies import load_eval_policy
    from zerosearch_rl.search import build_backend

    if not cfg.data.eval_files:
        raise ConfigError("no questions: set data.eval_files (ZeroSearch parquet or JSONL files)")
    examples = load_examples(cfg.data.eval_files, cfg.data.sources, cfg.eval.limit)
    methods = [get_method(m) for m in cfg.eval.methods]
    if cfg.eval.threads:
        import torch

        torch.set_num_threads(cfg.eval.threads)
    backend: SearchBackend = build_backend(cfg) if any(m.searches for m in methods) else NoSearch()
    policy = load_eval_policy(cfg)
    try:
        return evaluate(policy.generator, policy.tokenizer, backend, examples, cfg.eval.methods, cfg,
                        cfg.eval.output_dir, name=cfg.eval.name or policy.label, fresh=fresh, progress=progress)
    finally:
        policy.close()
        backend.close()


class NoSearch(CountingBackend):
    """The engine of an evaluation whose methods never search; a search would be a bug."""

    name = "none"

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        raise RuntimeError("no search engine was built: no method of this evaluation searches")
