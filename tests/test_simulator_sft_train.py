"""Fine-tuning a simulator with TRL: loss on the completion only, any tokenizer, and the saved folder served
unchanged by the ``simulate_sft`` engine. Tiny word-level models, seconds on a CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fakes.primed import world_tokenizer
from fakes.search_records import record
from zerosearch_rl.config import SimConfig, load_config
from zerosearch_rl.data import load_examples
from zerosearch_rl.llm.base import Sampling, render_chat
from zerosearch_rl.llm.transformers_chat import TransformersChat
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search import build_backend
from zerosearch_rl.search.bm25 import BM25Backend
from zerosearch_rl.search.simulated import SFT_TEMPLATE
from zerosearch_rl.simulator_sft import (
    AnswerInDocsJudge,
    ScriptedCollector,
    collect_searches,
    label_records,
    read_records,
    score_simulator,
    train_simulator,
    write_sft_set,
)
from zerosearch_rl.simulator_sft.records import write_records
from zerosearch_rl.simulator_sft.train import build_sft_trainer, read_summary
from zerosearch_rl.tiny_models import tiny_llama

CHAT_TEMPLATE = ("{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
                 "{% if add_generation_prompt %}<s> assistant :{% endif %}")


def save_base(path: Path, chat_template: str | None = None) -> Path:
    """A tiny Llama over a word-level tokenizer that knows the simulator prompt's words (no chat template)."""
    words = [SFT_TEMPLATE.replace("{", " ").replace("}", " "), "useful noisy Useful Noisy user assistant"]
    tok = world_tokenizer(words)
    tok.chat_template = chat_template
    tiny_llama(len(tok), seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def mini_chain(tmp_path_factory) -> Path:
    """Collected, labelled and split searches of the mini assets (scripted collector, BM25, answer_in_docs)."""
    root = tmp_path_factory.mktemp("chain")
    engine = BM25Backend(asset("mini_corpus.jsonl"), topk=3)
    collect_searches(load_examples(asset("mini_qa.jsonl")), ScriptedCollector(), engine, root / "s.jsonl",
                     show_progress=False)
    label_records(root / "s.jsonl", root / "l.jsonl", AnswerInDocsJudge(), show_progress=False)
    write_sft_set(root / "l.jsonl", root / "sft.jsonl", root / "h.jsonl", 0.3)
    return root


FAST = SimConfig(lr=1e-2, epochs=1.0, train_batch_size=4, max_length=256, device="cpu")


@pytest.mark.parametrize("chat", [False, True], ids=["plain-tokenizer", "chat-template"])
def test_loss_is_on_the_completion_only(tmp_path, mini_chain, chat):
    base = save_base(tmp_path / "base", CHAT_TEMPLATE if chat else None)
    trainer = build_sft_trainer(mini_chain / "sft.jsonl", str(base), tmp_path / "work", FAST, show_progress=False)
    tok = trainer.processing_class
    first = json.loads((mini_chain / "sft.jsonl").read_text().splitlines()[0])
    example = trainer.train_dataset[0]
    ids, labels = example["input_ids"], example["labels"]
    prompt = render_chat(tok, first["prompt"], "")  # the template after an empty system message, as served
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    completion = tok(first["completion"], add_special_tokens=False)["input_ids"]
    assert n_prompt > 20 and set(labels[:n_prompt]) == {-100}  # no loss on any prompt token
    assert labels[n_prompt:] == ids[n_prompt:]  # loss on every completion token ...
    assert ids[n_prompt : n_prompt + len(completion)] == completion  # ... which are the engine's documents
    assert ids[n_prompt + len(completion)] == tok.eos_token_id  # ... and the end of the answer
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trained = batch["attention_mask"].bool() & (batch["labels"] == batch["input_ids"])
    assert ((batch["labels"] != -100) == trained).all()
    assert int((batch["labels"][0] != -100).sum()) == len(ids) - n_prompt


def test_cpu_training_runs_without_mixed_precision_or_checkpointing(tmp_path, mini_chain):
    base = save_base(tmp_path / "base")
    sim = SimConfig(device="cpu", gradient_checkpointing=True)
    args = build_sft_trainer(mini_chain / "sft.jsonl", str(base), tmp_path / "w", sim, show_progress=False).args
    assert (args.bf16, args.fp16, args.activation_checkpointing, args.use_cpu) == (False, False, False, True)


def test_cpu_training_takes_bf16_autocast_when_asked_and_keeps_float32_weights(tmp_path, mini_chain):
    base = save_base(tmp_path / "base")
    sim = SimConfig(device="cpu", autocast="bf16")
    trainer = build_sft_trainer(mini_chain / "sft.jsonl", str(base), tmp_path / "w", sim, show_progress=False)
    assert (trainer.args.bf16, trainer.args.use_cpu) == (True, True)
    assert trainer.accelerator.mixed_precision == "bf16"
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.global_step > 0
    assert next(trainer.model.parameters()).dtype == torch.float32


def test_whole_chain_trains_saves_and_serves_through_simulate_sft(tmp_path, mini_chain):
    base = save_base(tmp_path / "base")
    out = train_simulator(mini_chain / "sft.jsonl", str(base), tmp_path / "sim", replace_epochs(FAST, 2.0),
                          show_progress=False)
    summary = read_summary(out)
    assert summary["steps"] == 4 and summary["last_loss"] < summary["first_loss"]
    cfg = load_config(None, ["search.backend=simulate_sft", "simulator.client=transformers", f"simulator.model={out}",
                             "simulator.temperature=0", "simulator.max_new_tokens=12"])
    backend = build_backend(cfg)
    pages = backend.search([SearchRequest(query="Ada Kowalski", question="Where was Ada Kowalski born?",
                                          answers=("Marlow",))])
    assert len(pages) == 1
    assert backend.metrics()["search/generated"] == 1 and backend.metrics()["search/completion_tokens"] > 0
    loaded = backend.llm.model.state_dict()
    saved = TransformersChat.from_pretrained(str(out), device="cpu").model.state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    report = score_simulator(read_records(mini_chain / "h.jsonl"), backend.llm, str(out), topk=3,
                             sampling=Sampling(temperature=0.0, max_new_tokens=12), show_progress=False)
    assert report.pairs == len(read_records(mini_chain / "h.jsonl")) and report.rows[1].tokens_per_query > 0


def replace_epochs(sim: SimConfig, epochs: float) -> SimConfig:
    from dataclasses import replace

    return replace(sim, epochs=epochs)


@pytest.mark.slow
def test_a_tuned_simulator_writes_useful_or_noisy_pages_on_request(tmp_path):
    """Trained on one useful and one noisy page of a query, the served simulator gives back the right one for
    each kind: the prompt's kind steers it, and the answer appears only in the useful page."""
    useful = record("u", ["Ada Kowalski is an astronomer who was born in Marlow."], "useful", example="a")
    noisy = record("n", ["Ada Kowalski works for Brightwater Instruments."], "noisy", example="a")
    write_records([useful, noisy], tmp_path / "l.jsonl")
    write_sft_set(tmp_path / "l.jsonl", tmp_path / "sft.jsonl")
    out = train_simulator(tmp_path / "sft.jsonl", str(save_base(tmp_path / "base")), tmp_path / "sim",
                          SimConfig(lr=3e-3, epochs=40.0, train_batch_size=2, device="cpu"), show_progress=False)
    cfg = load_config(None, ["search.backend=simulate_sft", f"simulator.model={out}", "simulator.temperature=0",
                             "simulator.max_new_tokens=40"])
    request = SearchRequest(query=useful.query, question=useful.question, answers=useful.answers)
    pages = build_backend(cfg).search([request, SearchRequest(**{**request.__dict__, "noisy": True})])
    texts = [" ".join(d.text for d in page) for page in pages]
    assert "Marlow" in texts[0] and "Marlow" not in texts[1] and "Brightwater" in texts[1]


def test_lora_training_saves_a_plain_merged_model(tmp_path, mini_chain):
    from dataclasses import replace

    from transformers import AutoModelForCausalLM

    base = save_base(tmp_path / "base")
    out = train_simulator(mini_chain / "sft.jsonl", str(base), tmp_path / "sim",
                          replace(FAST, lora_rank=4, lora_alpha=8), show_progress=False)
    assert not (out / "adapter_config.json").exists() and (out / "config.json").is_file()
    tuned = AutoModelForCausalLM.from_pretrained(out).state_dict()
    start = AutoModelForCausalLM.from_pretrained(base).state_dict()
    assert set(tuned) == set(start)  # no lora_A / lora_B left: the adapters are merged into the weights
    changed = {k for k in start if not torch.equal(start[k], tuned[k])}
    assert changed and all(k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj") for k in changed)
