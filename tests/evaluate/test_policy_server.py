"""A policy behind an OpenAI-compatible completions server, evaluated end to end."""

from __future__ import annotations

import pytest
from tests.evaluate.scripted import examples
from tests.fakes.openai_server import FakeOpenAIServer, unused_base_url

from zerosearch_rl.config import load_config
from zerosearch_rl.data import write_jsonl
from zerosearch_rl.evaluate.harness import evaluate_config
from zerosearch_rl.generation.openai_completions import restore_stop
from zerosearch_rl.net import EndpointError
from zerosearch_rl.tiny_models import byte_tokenizer


def _reply(prompt: str) -> str:
    # the server sees the rendered prompt text; it cuts the reply at the request's stop strings
    if "Doc 1" in prompt:
        return "<think> read it </think> <answer> Paris </answer> and more text"
    return "<think> look </think> <search> capital of France </search> never sent"


def test_restore_stop_puts_back_only_an_open_element():
    assert restore_stop("<think> x </think> <search> q ") == ("<think> x </think> <search> q </search>", True)
    assert restore_stop("<answer> Paris ") == ("<answer> Paris </answer>", True)
    assert restore_stop("<answer> Paris </answer> bye") == ("<answer> Paris </answer> bye", False)
    assert restore_stop("plain prose") == ("plain prose", False)


def _cfg(tmp_path, urls, *extra):
    tok_dir = tmp_path / "tok"
    byte_tokenizer().save_pretrained(tok_dir)
    data = write_jsonl(examples()[:2], tmp_path / "qa.jsonl")
    return load_config(None, [f"eval.policy_urls={urls}", f"model.tokenizer={tok_dir}", f"data.eval_files=[{data}]",
                              "search.backend=fake", "search.topk=1", "model.prompt_style=base",
                              f"eval.output_dir={tmp_path / 'run'}", "eval.methods=[agent]",
                              "eval.policy_max_retries=1",
                              *extra])


def test_agent_through_a_completions_server(tmp_path):
    with FakeOpenAIServer(_reply, models=("served-policy",)) as server:
        cfg = _cfg(tmp_path, f"[{server.base_url}]")
        report = evaluate_config(cfg, progress=False)
        bodies = [r.body for r in server.requests if r.path == "/v1/completions"]
    assert report.name == "served-policy"  # the first model the server lists
    assert report.results["agent"]["overall"]["exact_match"] == 0.5  # Paris is right for q1, wrong for q2
    assert report.results["agent"]["overall"]["searches"] == 1.0
    assert report.results["agent"]["overall"]["format_valid"] == 1.0  # the stripped </search> was put back
    first = bodies[0]
    assert first["stop"] == ["</search>", "</answer>"] and first["temperature"] == 0.0
    assert first["top_p"] == cfg.eval.top_p
    assert first["max_tokens"] == cfg.rollout.max_new_tokens  # the first turn's budget, not a sampling default
    assert first["prompt"].startswith("Answer the question below.")
    # the second turn's prompt carries the first turn and the documents, as text
    assert any("<search> capital of France </search>" in b["prompt"] and "Doc 1" in b["prompt"] for b in bodies)


def test_unreachable_policy_server_names_the_url(tmp_path):
    url = unused_base_url()
    with pytest.raises(EndpointError, match=rf"no answer from {url} after 2 attempts"):
        evaluate_config(_cfg(tmp_path, f"[{url}]", "eval.policy_model=m", "eval.policy_timeout_s=2"),
                        progress=False)
