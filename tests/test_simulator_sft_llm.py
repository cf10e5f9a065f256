"""The LLM judge against a real loopback OpenAI-compatible server: its verdicts, its prompt, a down server."""

from __future__ import annotations

import pytest

from fakes.openai_server import FakeOpenAIServer, unused_base_url
from fakes.search_records import record
from zerosearch_rl.config import SimConfig
from zerosearch_rl.net import EndpointError
from zerosearch_rl.simulator_sft import build_judge, label_records
from zerosearch_rl.simulator_sft.label import parse_verdict
from zerosearch_rl.simulator_sft.records import write_records


def referee(message: str) -> str:
    """Says yes when the documents (not the question) hold the correct answer, as a careful judge would."""
    answer = message.split("Correct answer: ")[1].split("\n")[0]
    documents = message.split("Documents:\n")[1].split("\n\nDo these")[0]
    if "garbled" in documents:
        return "I cannot tell."
    return "Yes." if answer in documents else "<think>the answer is absent</think> No"


def judge_for(server: FakeOpenAIServer | None, urls: tuple[str, ...] = (), retries: int = 1):
    return build_judge(SimConfig(judge="llm", judge_base_urls=urls or (server.base_url,), judge_model="judge",
                                 judge_max_retries=retries, judge_backoff_s=0.0, judge_timeout_s=5.0))


def test_llm_judge_says_useful_and_noisy_from_its_prompt():
    useful = record("u", ["Ada Kowalski was born in Marlow."])
    noisy = record("n", ["Ada Kowalski is an astronomer."])
    with FakeOpenAIServer(reply=referee) as server:
        judge = judge_for(server)
        assert judge.judge([useful, noisy]) == [True, False]
        judge.llm.close()
        bodies = server.chat_bodies()
    # The judge sends its requests concurrently: each prompt is found by its page, not by arrival order.
    prompts = [b["messages"][0]["content"] for b in bodies]
    (prompt,) = [p for p in prompts if "born in Marlow" in p]
    assert 'Question: Where was Ada Kowalski born?\nCorrect answer: Marlow\nSearch query: Ada Kowalski birthplace' \
        in prompt
    assert "Doc 1: (Title: T0) Ada Kowalski was born in Marlow." in prompt
    (other,) = [p for p in prompts if "astronomer" in p]
    assert "Doc 1: (Title: T0) Ada Kowalski is an astronomer." in other and len(prompts) == 2
    assert all(b["model"] == "judge" and b["temperature"] == 0.0 for b in bodies)


def test_pages_without_a_verdict_are_counted_and_left_out(tmp_path):
    records = [record("u", ["born in Marlow"]), record("n", ["nothing"]), record("g", ["garbled text"])]
    write_records(records, tmp_path / "s.jsonl")
    with FakeOpenAIServer(reply=referee) as server:
        judge = judge_for(server)
        report = label_records(tmp_path / "s.jsonl", tmp_path / "l.jsonl", judge, show_progress=False)
        judge.llm.close()
    assert report.judged == {"useful": 1, "noisy": 1} and report.no_verdict == 1
    assert "1 pages without a verdict" in report.summary()


def test_a_down_judge_server_is_a_clear_error_naming_url_and_tries():
    url = unused_base_url()
    judge = judge_for(None, (url,), retries=2)
    with pytest.raises(EndpointError, match=rf"llm judge: chat completion: no answer from {url} after 3 attempts"):
        judge.judge([record("u", ["born in Marlow"])])
    judge.llm.close()


def test_a_failing_judge_server_fails_over_to_the_next_url():
    with FakeOpenAIServer(reply=referee) as server:
        judge = judge_for(None, (unused_base_url(), server.base_url), retries=2)
        assert judge.judge([record("u", ["born in Marlow"])]) == [True]
        judge.llm.close()


@pytest.mark.parametrize(("text", "verdict"), [("Yes", True), ("no.", False), ("  YES, they do", True),
                                               ("<think>hmm\nyes</think>\nNo", False), ("Maybe", None), ("", None)])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict
