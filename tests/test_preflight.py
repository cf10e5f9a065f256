"""The pre-flight: each problem a run can be known to have before its first step gives its named line in the table,
all of them at once, and no weights file is ever read on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakes.openai_server import FakeOpenAIServer, unused_base_url
from zerosearch_rl import cli, preflight
from zerosearch_rl.config import ConfigError, ServeConfig, load_config
from zerosearch_rl.memory_estimate import LOGIT_BYTES, estimate_memory, layer_width
from zerosearch_rl.model_shape import model_shape, read_config
from zerosearch_rl.preflight import PreflightFailed, render_table, require_batches, run_checks
from zerosearch_rl.search.fake import FakeBackend
from zerosearch_rl.server import create_app, serve_in_thread
from zerosearch_rl.tiny_models import byte_tokenizer, tiny_config

SMOKE = "configs/smoke.yaml"
TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"


@pytest.fixture(autouse=True)
def no_weights_read(monkeypatch):
    """Every pre-flight here runs with the ways weights are read replaced by a recorder: none may be called."""
    import safetensors.torch
    import torch
    from transformers import modeling_utils

    calls: list[str] = []

    def recorder(name):
        def record(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"the pre-flight read weights through {name}")
        return record

    monkeypatch.setattr(torch, "load", recorder("torch.load"))
    monkeypatch.setattr(safetensors.torch, "load_file", recorder("safetensors.torch.load_file"))
    monkeypatch.setattr(safetensors.torch, "load", recorder("safetensors.torch.load"))
    monkeypatch.setattr(modeling_utils.PreTrainedModel, "from_pretrained", classmethod(recorder("from_pretrained")))
    yield
    assert calls == []


def model_folder(root: Path, *, context: int = 4096, chat_template: str | None = None, weights: bool = True) -> Path:
    """tiny-random's config and tokenizer as a model folder. Its weights file is not a weights file at all:
    a check that opened it would fail."""
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_tokenizer()
    config = tiny_config(len(tokenizer))
    config.max_position_embeddings = context
    config.save_pretrained(root)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(root)
    if weights:
        (root / "model.safetensors").write_bytes(b"these bytes are no safetensors file")
    return root


def cfg_of(tmp_path: Path, *overrides: str):
    return load_config(SMOKE, [f"trainer.output_dir={tmp_path / 'run'}", *overrides])


def line(checks, name: str) -> str:
    """The table's lines of check ``name`` (all of them, joined)."""
    table = render_table(checks, 1).splitlines()
    found = [row for row in table if row.startswith(f"{name}  ") or row.startswith(f"{name} ")]
    assert found, f"no {name!r} line in\n" + "\n".join(table)
    return "\n".join(found)


def status(checks, name: str) -> set[str]:
    return {c.status for c in checks if c.name == name}


# ---------------------------------------------------------------- batch arithmetic


@pytest.mark.parametrize(("processes", "words"), [
    (2, "trainer.mini_batches=8 must divide the 4 trajectories of a step on each of 2 processes (batch_size 2 / 2 x "
        "n_samples 4); valid: 1, 2, 4"),
    (4, "trainer.batch_size=2 prompts cannot be split over 4 processes (each rolls out whole groups of "
        "rollout.n_samples=4); use a multiple of 4, e.g. 4, or run on 1, 2 processes"),
])
def test_batches_that_do_not_divide_over_the_processes_fail_with_a_valid_alternative(tmp_path, processes, words):
    cfg = cfg_of(tmp_path, "trainer.batch_size=2", "trainer.mini_batches=8")
    assert status(run_checks(cfg, 1), "batch") == {"ok"}  # 8 trajectories into 8 optimizer steps on one process
    checks = run_checks(cfg, processes)
    assert status(checks, "batch") == {"FAIL"}
    assert words in line(checks, "batch")


def test_single_process_batch_problems_moved_from_the_config_keep_their_messages():
    """These were ConfigErrors of load_config; the pre-flight lists them now, with the same words."""
    assert load_config(None, ["rollout.n_samples=1"]).rollout.n_samples == 1
    with pytest.raises(ConfigError, match=r"rollout.n_samples must be >= 2, got 1.*algorithm.advantage=reinforce"):
        require_batches(load_config(None, ["rollout.n_samples=1"]), 1)
    with pytest.raises(ConfigError, match=r"mini_batches=2 must divide the 15 trajectories of a step \(batch_size 3 / "
                                          r"1 x n_samples 5\); valid: 1, 3, 5, 15"):
        require_batches(load_config(None, ["trainer.batch_size=3", "trainer.mini_batches=2"]), 1)
    require_batches(load_config(None, ["rollout.n_samples=1", "algorithm.advantage=reinforce"]), 1)


def test_both_batch_problems_are_listed_together():
    with pytest.raises(ConfigError) as caught:
        require_batches(load_config(None, ["rollout.n_samples=1", "trainer.batch_size=3", "trainer.mini_batches=2"]), 1)
    assert "n_samples must be >= 2" in str(caught.value) and "mini_batches=2 must divide the 3" in str(caught.value)


# ---------------------------------------------------------------- model, tokenizer, lengths


def test_a_model_folder_with_config_and_tokenizer_passes_without_its_weights_being_read(tmp_path):
    folder = model_folder(tmp_path / "model")
    checks = run_checks(cfg_of(tmp_path, f"model.policy={folder}"), 1)
    assert preflight.failures(checks) == [], render_table(checks, 1)
    assert "llama, 0.1M parameters (from config.json)" in line(checks, "model")
    assert "weights: 1 file(s)" in line(checks, "model") and "(not opened)" in line(checks, "model")


def test_a_model_folder_without_weights_or_config_is_named(tmp_path):
    bare = model_folder(tmp_path / "bare", weights=False)
    checks = run_checks(cfg_of(tmp_path, f"model.policy={bare}"), 1)
    assert f"no weights file in {bare}" in line(checks, "model")
    assert status(checks, "context") == {"ok"}  # the rest is still checked from config.json
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"no config.json in {empty}" in line(run_checks(cfg_of(tmp_path, f"model.policy={empty}"), 1), "model")
    missing = line(run_checks(cfg_of(tmp_path, f"model.policy={tmp_path / 'nowhere'}"), 1), "model")
    assert "FAIL" in missing
    assert "neither a folder on this machine nor a model in the local Hugging Face cache" in missing


def test_a_context_too_short_names_the_lengths_and_what_fits(tmp_path):
    folder = model_folder(tmp_path / "short", context=1024)
    checks = run_checks(cfg_of(tmp_path, f"model.policy={folder}", "rollout.max_prompt_tokens=900"), 1)
    assert status(checks, "context") == {"FAIL"}
    assert ("rollout.max_prompt_tokens=900 + a response of up to 176 tokens (2 turn(s) x rollout.max_new_tokens=24 + "
            "1 observation(s) x rollout.max_obs_tokens=128) = 1076 tokens, past the model's context of 1024 "
            "(max_position_embeddings in config.json); use rollout.max_response_tokens=124 or "
            "rollout.max_prompt_tokens=848") in line(checks, "context")


def test_the_response_cap_bounds_the_length_when_it_is_the_smaller(tmp_path):
    folder = model_folder(tmp_path / "m", context=1024)
    checks = run_checks(cfg_of(tmp_path, f"model.policy={folder}", "rollout.max_prompt_tokens=900",
                               "rollout.max_response_tokens=100"), 1)
    assert "prompt 900 + response 100 (rollout.max_response_tokens=100) = 1000 tokens" in line(checks, "context")


def test_a_prompt_mode_that_needs_a_chat_template_fails_on_a_tokenizer_without_one(tmp_path):
    plain = model_folder(tmp_path / "plain")
    checks = run_checks(cfg_of(tmp_path, f"model.policy={plain}", "model.prompt_style=chat"), 1)
    assert status(checks, "chat template") == {"FAIL"}
    assert (f"model.prompt_style=chat renders prompts through the tokenizer's chat template, and {plain} has none"
            in line(checks, "chat template"))
    assert "use model.prompt_style=base" in line(checks, "chat template")
    auto = run_checks(cfg_of(tmp_path, f"model.policy={plain}", "model.prompt_style=auto"), 1)
    assert status(auto, "chat template") == {"ok"}  # auto falls back to the plain-text instruction
    templated = model_folder(tmp_path / "templated", chat_template=TEMPLATE)
    chat = run_checks(cfg_of(tmp_path, f"model.policy={templated}", "model.prompt_style=chat"), 1)
    assert "used (model.prompt_style=chat) and renders the prompt" in line(chat, "chat template")


def test_prompts_longer_than_the_limit_name_the_longest(tmp_path):
    checks = run_checks(cfg_of(tmp_path, "rollout.max_prompt_tokens=300"), 1)
    assert status(checks, "prompts") == {"FAIL"}
    assert "18 of 18 prompts are longer than rollout.max_prompt_tokens=300 (longest: 507 tokens" in line(checks,
                                                                                                        "prompts")


def test_stop_strings_and_ids_of_the_tokenizer_are_reported(tmp_path):
    checks = run_checks(cfg_of(tmp_path), 1)
    assert "</search> 9 tokens, </answer> 9 tokens; each decodes back" in line(checks, "stop strings")
    assert "260 tokens; pad '<pad>' = 0; a turn ends at token id(s) 3" in line(checks, "tokenizer")


def test_a_bad_data_row_is_named(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "q?", "answers": ["a"]}\n{"question": "r?"}\n')
    checks = run_checks(cfg_of(tmp_path, f"data.train_files=[{data}]"), 1)
    assert f"{data}: row 2: missing field 'answers'" in line(checks, "data")


# ---------------------------------------------------------------- engines


def test_a_dead_simulator_url_fails_at_once_naming_the_url(tmp_path):
    dead = unused_base_url()
    checks = run_checks(cfg_of(tmp_path, "search.backend=simulate_sft", "simulator.client=openai",
                               f"simulator.base_urls=[{dead}]"), 1)
    assert status(checks, "search engine") == {"FAIL"}
    assert f"simulator {dead}: GET /models: ConnectError" in line(checks, "search engine")


def test_a_live_simulator_names_the_model_it_serves_and_answers_a_probe(tmp_path):
    page = "Doc 1: Paris is the capital of France.\nDoc 2: France's capital is Paris."
    with FakeOpenAIServer(reply=lambda _: page, models=("sim-14b",)) as server:
        good = run_checks(cfg_of(tmp_path, "search.backend=simulate_sft", "simulator.client=openai",
                                 f"simulator.base_urls=[{server.base_url}]"), 1)
        wrong = run_checks(cfg_of(tmp_path, "search.backend=simulate_sft", "simulator.client=openai",
                                  f"simulator.base_urls=[{server.base_url}]", "simulator.model=sim-7b"), 1)
        assert server.chat_bodies()[0]["max_tokens"] == preflight.PROBE_PAGE_TOKENS  # one short probe page
        assert len(server.chat_bodies()) == 1  # and only for the config whose model is served
    assert status(good, "search engine") == {"ok"}
    assert (f"simulator {server.base_url} serves sim-14b; a {preflight.PROBE_PAGE_TOKENS}-token page: 2 document(s) "
            f"for a probe query") in line(good, "search engine")
    assert all(c.latency_s for c in good if c.name == "search engine")  # with its latency (and, when the client
    # took 0.5 s or more to start, its start-up time: load decides which, so neither is asked for here)
    assert "serves sim-14b, not simulator.model='sim-7b'; set simulator.model to one of them" in line(wrong,
                                                                                                     "search engine")


def test_a_simulator_that_never_answers_is_bounded_by_the_probe_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "PROBE_TIMEOUT_S", 0.3)
    with FakeOpenAIServer(hang=True) as server:
        checks = run_checks(cfg_of(tmp_path, "search.backend=simulate_sft", "simulator.client=openai",
                                   f"simulator.base_urls=[{server.base_url}]"), 1)
    assert status(checks, "search engine") == {"FAIL"}
    assert "after 1 attempts" in line(checks, "search engine")  # one attempt, no retry


def test_remote_urls_are_probed_each_and_a_dead_one_is_a_warning_while_another_answers(tmp_path):
    dead = unused_base_url().removesuffix("/v1")
    with serve_in_thread(create_app(FakeBackend(topk=5), ServeConfig())) as live:
        checks = run_checks(cfg_of(tmp_path, "search.backend=remote", f"search.urls=[{dead}, {live}]"), 1)
        alone = run_checks(cfg_of(tmp_path, "search.backend=remote", f"search.urls=[{dead}]"), 1)
    rows = [c for c in checks if c.name == "search engine"]
    assert [c.status for c in rows] == ["warn", "ok"]
    assert rows[0].detail.startswith(f"remote {dead}: ") and "the other URLs take over" in rows[0].detail
    assert rows[1].detail.startswith(f"remote {live}: 2 document(s) for a probe query") and rows[1].latency_s
    assert status(alone, "search engine") == {"FAIL"}


def test_a_corpus_with_a_bad_row_names_file_row_and_field(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "1", "title": "Paris", "text": "Paris is in France."}\n{"id": "2", "title": "x"}\n')
    checks = run_checks(cfg_of(tmp_path, "search.backend=bm25", f"search.corpus={corpus}"), 1)
    assert status(checks, "search engine") == {"FAIL"}
    assert f"bm25: {corpus}: row 2: missing field 'text'" in line(checks, "search engine")
    corpus.write_text('{"id": "1", "title": "Ada Kowalski", "text": "Ada Kowalski was born in Marlow."}\n')
    good = run_checks(cfg_of(tmp_path, "search.backend=bm25", f"search.corpus={corpus}"), 1)
    assert "bm25: 1 document(s) for a probe query" in line(good, "search engine")


def test_serpapi_needs_its_key_and_is_never_called(tmp_path, monkeypatch):
    for name in ("SERPAPI_API_KEY", "SER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    missing = run_checks(cfg_of(tmp_path, "search.backend=serpapi"), 1)
    assert "serpapi: no API key in the environment variable SERPAPI_API_KEY or SER_API_KEY" in line(missing,
                                                                                                   "search engine")
    monkeypatch.setenv("SER_API_KEY", "secret")
    found = line(run_checks(cfg_of(tmp_path, "search.backend=serpapi"), 1), "search engine")
    assert "key found in SER_API_KEY (the check does not call SerpAPI)" in found and "secret" not in found


def test_an_in_process_simulator_is_checked_from_its_files(tmp_path):
    folder = model_folder(tmp_path / "sim")
    checks = run_checks(cfg_of(tmp_path, "search.backend=simulate_prompt", "simulator.client=transformers",
                               f"simulator.model={folder}"), 1)
    assert f"in-process simulator {folder} (0M parameters, simulator.client=transformers)" in line(checks,
                                                                                                  "search engine")
    empty = run_checks(cfg_of(tmp_path, "search.backend=simulate_prompt", "simulator.client=transformers"), 1)
    assert "simulator.model is empty" in line(empty, "search engine")


def test_the_eval_engine_is_probed_too(tmp_path):
    dead = unused_base_url().removesuffix("/v1")
    checks = run_checks(cfg_of(tmp_path, "trainer.eval_every=1", "data.eval_files=[src/zerosearch_rl/assets/"
                                         "mini_qa.jsonl]", f"trainer.eval_search=[search.backend=remote, "
                                                           f"'search.urls=[{dead}]']"), 1)
    assert status(checks, "search engine") == {"ok"} and status(checks, "eval engine") == {"FAIL"}
    assert f"remote {dead}" in line(checks, "eval engine")


# ---------------------------------------------------------------- memory and disk


def test_memory_that_does_not_fit_fails_with_what_to_change(tmp_path, monkeypatch):
    import psutil

    available = 10 << 20
    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("M", (), {"available": available})())
    cfg = cfg_of(tmp_path, "model.device=cpu", "trainer.micro_batch_size=8", "trainer.mini_batches=1")
    checks = run_checks(cfg, 1)
    assert status(checks, "memory") == {"FAIL"}
    text = line(checks, "memory")
    for fix in ("model.lora_rank=16", "trainer.micro_batch_size=4", "model.gradient_checkpointing=true",
                "algorithm.kl_coef=0 (no reference copy)"):
        assert fix in text
    assert "10 MiB of RAM available" in text
    warned = run_checks(cfg_of(tmp_path, "model.device=cpu", "trainer.memory_check=warn"), 1)
    assert status(warned, "memory") == {"warn"} and "trainer.memory_check=warn starts anyway" in line(warned, "memory")
    assert status(run_checks(cfg_of(tmp_path, "trainer.memory_check=skip"), 1), "memory") == {"ok"}


def test_disk_without_room_for_the_checkpoints_fails(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _: type("U", (), {"free": 1000})())
    checks = run_checks(cfg_of(tmp_path), 1)
    assert status(checks, "disk") == {"FAIL"}
    assert "2 checkpoint(s) (trainer.keep_checkpoints) and one being written" in line(checks, "disk")
    assert "lower trainer.keep_checkpoints" in line(checks, "disk")
    (tmp_path / "file").write_text("")
    under_file = run_checks(load_config(SMOKE, [f"trainer.output_dir={tmp_path / 'file' / 'run'}"]), 1)
    assert f"{tmp_path / 'file'} is a file, not a folder" in line(under_file, "disk")


# ---------------------------------------------------------------- all at once, and the command line


def test_every_problem_is_listed_at_once(tmp_path):
    folder = model_folder(tmp_path / "m", context=1024)
    dead = unused_base_url()
    cfg = cfg_of(tmp_path, f"model.policy={folder}", "model.prompt_style=chat", "trainer.batch_size=3",
                 "search.backend=simulate_sft", "simulator.client=openai", f"simulator.base_urls=[{dead}]")
    checks = run_checks(cfg, 2)
    assert {c.name for c in preflight.failures(checks)} == {"batch", "chat template", "context", "search engine"}
    with pytest.raises(PreflightFailed) as caught:
        preflight.preflight(cfg, 2, show=False)
    message = str(caught.value)
    assert message.startswith("pre-flight: 4 problem(s), nothing loaded or written: batch: trainer.batch_size=3")
    for words in ("chat template: model.prompt_style=chat", "context: rollout.max_prompt_tokens=2048",
                  f"search engine: simulator {dead}"):
        assert words in message


def test_train_check_exits_0_or_2_and_prints_the_table(tmp_path, capsys):
    assert cli.main(["train", "--config", SMOKE, "--check", f"trainer.output_dir={tmp_path / 'run'}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pre-flight (1 process)\ncheck") and "0 failed" in out
    assert cli.main(["train", "--config", SMOKE, "--check", "--processes", "4",
                     f"trainer.output_dir={tmp_path / 'run'}"]) == 2
    captured = capsys.readouterr()
    assert "pre-flight (4 processes)" in captured.out and "1 failed" in captured.out
    assert "zerosearch: error: pre-flight: 1 problem(s)" in captured.err
    assert not (tmp_path / "run").exists()
    assert cli.main(["train", "--config", SMOKE, "--processes", "2"]) == 2
    assert "--processes N (N >= 1) goes with --check" in capsys.readouterr().err


def test_train_refuses_to_start_with_the_table(tmp_path, capsys, monkeypatch):
    import zerosearch_rl.trainer

    monkeypatch.setattr(zerosearch_rl.trainer, "Trainer", lambda *a, **k: pytest.fail("the trainer was built"))
    assert cli.main(["train", "--config", SMOKE, f"trainer.output_dir={tmp_path / 'run'}",
                     "rollout.max_prompt_tokens=4000"]) == 2
    captured = capsys.readouterr()
    assert "context        FAIL" in captured.out and "past the model's context of 4096" in captured.err
    assert not (tmp_path / "run").exists()


def test_under_torchrun_only_rank_0_prints_and_the_process_count_is_the_world_size(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    assert cli.main(["train", "--config", SMOKE, f"trainer.output_dir={tmp_path / 'run'}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # rank 3 prints no table, and refuses all the same
    assert "trainer.batch_size=2 prompts cannot be split over 4 processes" in captured.err


# ---------------------------------------------------------------- the estimate's parts, and the whole against a run


def test_the_parameter_count_from_config_json_is_the_model_s(tmp_path):
    pytest.importorskip("peft")
    from peft import LoraConfig, get_peft_model

    from zerosearch_rl.tiny_models import tiny_llama

    folder = model_folder(tmp_path / "m")
    shape = model_shape(read_config(folder), 4, ("q_proj", "v_proj"))
    model = tiny_llama(len(byte_tokenizer()))
    assert shape.parameters == sum(p.numel() for p in model.parameters())
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    assert shape.lora_parameters == sum(p.numel() for p in peft.parameters() if p.requires_grad)


def test_the_layer_and_logit_widths_are_what_autograd_keeps():
    """The activation terms counted against torch's saved-tensor hooks on a training pass of
    ``policy.token_logprobs`` (with entropy) through transformers' Llama: per decoder layer exactly, per vocabulary
    entry the saved 17 bytes (``LOGIT_BYTES`` adds the transients alive at the peak)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from zerosearch_rl.policy import TokenBatch, token_logprobs

    def saved_per_token(layers: int, vocab: int, kv_heads: int = 4) -> float:
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=320, num_hidden_layers=layers,
                          num_attention_heads=4, num_key_value_heads=kv_heads, attn_implementation="sdpa")
        model = LlamaForCausalLM(cfg).train()
        ids = torch.randint(0, vocab, (2, 48))
        batch = TokenBatch(ids, torch.ones_like(ids), torch.ones(2, 47), torch.zeros(2, 47))
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        kept: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in params:
                kept[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            token_logprobs(model, batch, 1.0, with_entropy=True)
        return sum(kept.values()) / ids.numel()

    shape = model_shape(LlamaConfig(vocab_size=64, hidden_size=128, intermediate_size=320, num_hidden_layers=1,
                                    num_attention_heads=4, num_key_value_heads=2))
    per_layer = saved_per_token(2, 64, 2) - saved_per_token(1, 64, 2)
    assert per_layer == pytest.approx(layer_width(shape) * 4, rel=0.01)  # float32, a few per-token scalars on top
    per_entry = (saved_per_token(1, 4096) - saved_per_token(1, 64)) / (4096 - 64)
    assert 16 <= per_entry <= 17.5 < LOGIT_BYTES


MEASURE = """
import json, sys
import psutil
import torch
torch.set_num_threads(1)
from zerosearch_rl.config import load_config
from zerosearch_rl.tiny_models import tiny_llama
from zerosearch_rl.trainer import Trainer
tiny_llama(300)  # the model code's first use, before the baseline
cfg = load_config(None, sys.argv[1:])
base = psutil.Process().memory_info().rss
trainer = Trainer(cfg)
metrics = trainer.step(0)
# VmHWM is this process image's own peak; ru_maxrss would also count the parent's resident set at fork time
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]) * 1024
print(json.dumps({"growth": peak - base,
                  "policy_tokens": metrics["rollout/policy_tokens"]}))
"""

#: The estimate against the measured peak of a real step on the CPU: within this share of it (README, docs).
TOLERANCE = 0.25


def pair_tokenizer(size: int):
    """A byte-level tokenizer with ``size`` tokens: the bytes, then pairs of bytes that no text encodes to but that
    decode (a large vocabulary for the logits without merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    pairs = [a + b for a in alphabet for b in alphabet][: size - 4 - len(alphabet)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<s>", "</s>", *alphabet, *pairs])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>")


@pytest.mark.slow
def test_the_memory_estimate_is_within_a_quarter_of_a_measured_step(tmp_path):
    """One real GRPO step (sampling, old and reference log-probs, two optimizer steps of one micro-batch each) of a
    5.5M-parameter Llama with an 8192-token vocabulary, in a fresh process: the growth of its peak resident memory
    over the baseline before the trainer is built, against the estimate for its config. Prompts all 314 tokens and
    no two alike from the first token (so no shared prefix), one turn of 256 new tokens (the vocabulary makes an
    early EOS unlikely). glibc is told to map every allocation above 64 KiB on its own, so freed memory leaves
    the process and the peak is the peak of live memory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "policy"
    tok = pair_tokenizer(8192)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096, pad_token_id=0,
                      bos_token_id=2, eos_token_id=3, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    data = tmp_path / "qa.jsonl"
    with data.open("w") as f:
        for i in range(8):
            content = f"{chr(65 + i)} " + ("filler words of the prompt " * 20)[:300] + f" question {i}?"
            f.write(json.dumps({"id": f"q{i}", "question": f"Question {i}?", "answers": ["x"],
                                "prompt": [{"role": "user", "content": content}]}) + "\n")
    overrides = [f"model.policy={folder}", "model.prompt_style=base", "model.prompt_template=data", "model.device=cpu",
                 f"data.train_files=[{data}]", "search.backend=fake", "rollout.max_turns=1",
                 "rollout.max_prompt_tokens=314", "rollout.max_new_tokens=256", "rollout.n_samples=2",
                 "trainer.batch_size=4", "trainer.mini_batches=2", "trainer.micro_batch_size=4",
                 "algorithm.old_logprobs=recompute", f"trainer.output_dir={tmp_path / 'run'}"]
    config = load_config(None, overrides)
    checks = run_checks(config, 1)
    assert status(checks, "prompts") == {"ok"} and "longest of 8 prompts: 314 tokens" in line(checks, "prompts")
    estimate = estimate_memory(config, model_shape(read_config(folder)), processes=1, prompt_tokens=314,
                               tokens=314 + 256, device="cpu")
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", MEASURE, *overrides], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["policy_tokens"] > 200  # the rows ran (nearly) to their budget, as the estimate assumes
    assert estimate.training["activations"] > estimate.static  # the activations term is the one under test
    ratio = measured["growth"] / estimate.peak
    print(f"measured peak growth {measured['growth'] / 2**20:.0f} MiB, estimate {estimate.peak / 2**20:.0f} MiB, "
          f"ratio {ratio:.3f}")
    assert 1 - TOLERANCE <= ratio <= 1 + TOLERANCE, (measured, estimate)
