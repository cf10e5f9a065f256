"""The evaluation harness on a scripted model: known replies give hand-computed scores."""

from __future__ import annotations

import json

import pytest
from tests.evaluate.scripted import ScriptedGenerator, answer_by_question, examples

from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.data import DataError
from zerosearch_rl.evaluate import evaluate, get_method
from zerosearch_rl.evaluate.report import TRACES_FILE, read_traces
from zerosearch_rl.search.fake import FakeBackend


def _cfg(*overrides: str):
    return load_config(None, ["eval.batch_size=2", "model.prompt_style=base", *overrides])


def test_direct_scores_per_source_and_overall(tmp_path):
    gen = ScriptedGenerator(answer_by_question)
    report = evaluate(gen, gen.tokenizer, FakeBackend(), examples(), ["direct"], _cfg(), tmp_path, progress=False)
    r = report.results["direct"]
    # nq: Paris (EM 1), "the city of Lisbon" (EM 0, cover 1, F1 2*(1/3*1)/(4/3) = 0.5), Quito (all 0)
    assert r["nq"]["exact_match"] == pytest.approx(1 / 3)
    assert r["nq"]["cover_em"] == pytest.approx(2 / 3)
    assert r["nq"]["f1"] == pytest.approx((1 + 0.5 + 0) / 3)
    # hotpotqa: "Curie" vs "Marie Curie" (F1 2*(1*0.5)/1.5 = 2/3), an untagged reply (no answer: 0, format invalid)
    assert r["hotpotqa"]["exact_match"] == 0.0
    assert r["hotpotqa"]["f1"] == pytest.approx(1 / 3)
    assert r["hotpotqa"]["format_valid"] == 0.5
    assert r["hotpotqa"]["answered"] == 0.5
    # ... though that untagged reply holds the gold year: only response_cover_em sees it
    assert r["hotpotqa"]["response_cover_em"] == 0.5 and r["hotpotqa"]["cover_em"] == 0.0
    # overall weighs each of the 5 questions once
    assert r["overall"]["exact_match"] == pytest.approx(1 / 5)
    assert r["overall"]["f1"] == pytest.approx((1 + 0.5 + 0 + 2 / 3 + 0) / 5)
    assert r["overall"]["n"] == 5
    assert r["nq"]["searches"] == 0.0 and r["overall"]["answer_in_documents"] == 0.0
    assert r["nq"]["answer_words"] == pytest.approx((1 + 4 + 1) / 3)
    # 5 questions in batches of 2: the partial last batch is run too
    assert gen.batches == [2, 2, 1]
    traces = read_traces(tmp_path / TRACES_FILE)
    assert [t["id"] for t in traces] == ["q1", "q2", "q3", "q4", "q5"]
    assert traces[1]["prediction"] == "the city of Lisbon"
    assert traces[1]["response"] == "<answer> the city of Lisbon </answer>"
    assert "Question: Capital of Portugal?" in traces[1]["prompt"]


def test_rag_and_agent_record_documents_and_searches(tmp_path):
    def reply(context: str) -> str:
        if "Doc 1" in context:  # documents were shown (the instruction itself names the tags)
            return answer_by_question(context)
        return "<think> look it up </think> <search> capital </search>"

    gen = ScriptedGenerator(reply)
    report = evaluate(gen, gen.tokenizer, FakeBackend(topk=2), examples()[:2], ["rag", "agent", "agent_forced"],
                      _cfg(), tmp_path, progress=False)
    traces = {(t["method"], t["id"]): t for t in read_traces(tmp_path / TRACES_FILE)}
    rag = traces[("rag", "q1")]
    assert rag["searches"][0]["query"] == "Capital of France?"
    assert len(rag["searches"][0]["documents"]) == 2
    assert "Paris" in rag["searches"][0]["documents"][0]["text"]  # FakeBackend's useful document
    agent = traces[("agent", "q1")]
    assert [s["query"] for s in agent["searches"]] == ["capital"]
    assert "<search> capital </search>" in agent["response"] and "<information>" in agent["response"]
    assert agent["scores"]["format_valid"] == 1.0
    forced = traces[("agent_forced", "q1")]
    # the forced search of the question comes first, then the model's own search
    assert [s["query"] for s in forced["searches"]] == ["Capital of France?"]
    assert forced["response"].startswith("<search> Capital of France? </search>")
    assert report.results["agent_forced"]["overall"]["searches"] == 1.0
    assert report.results["agent"]["overall"]["searches"] == 1.0
    assert report.results["rag"]["overall"]["exact_match"] == 0.5  # Paris right, "the city of Lisbon" not
    # FakeBackend's first document states the answer for the question it is told, whatever the query
    assert report.results["rag"]["overall"]["answer_in_documents"] == 1.0


def test_agent_prefixed_starts_the_first_turn_with_the_prefix_and_the_model_writes_the_query(tmp_path):
    def reply(context: str) -> str:
        if "Doc 1" in context:
            return answer_by_question(context)
        # the model never searches by itself; once its turn starts with "<search>" it completes a query
        return " capital </search>" if context.endswith("<search>") else "<answer> Rome </answer>"

    gen = ScriptedGenerator(reply)
    report = evaluate(gen, gen.tokenizer, FakeBackend(topk=2), examples()[:2], ["agent", "agent_prefixed"],
                      _cfg(), tmp_path, progress=False)
    traces = {(t["method"], t["id"]): t for t in read_traces(tmp_path / TRACES_FILE)}
    assert traces[("agent", "q1")]["searches"] == [] and report.results["agent"]["overall"]["exact_match"] == 0.0
    prefixed = traces[("agent_prefixed", "q1")]
    assert [s["query"] for s in prefixed["searches"]] == ["capital"]  # its own query, not the question
    assert prefixed["response"].startswith("<search> capital </search>")
    assert report.results["agent_prefixed"]["overall"]["exact_match"] == 0.5  # as with documents shown above
    with pytest.raises(ConfigError, match="first_turn_prefix"):
        evaluate(gen, gen.tokenizer, FakeBackend(topk=2), examples()[:1], ["agent_prefixed"],
                 _cfg("eval.first_turn_prefix="), tmp_path / "empty", progress=False)


def test_resume_skips_written_items_and_tolerates_a_cut_last_line(tmp_path):
    gen = ScriptedGenerator(answer_by_question)
    cfg = _cfg()
    evaluate(gen, gen.tokenizer, FakeBackend(), examples()[:3], ["direct"], cfg, tmp_path, progress=False)
    path = tmp_path / TRACES_FILE
    # an interruption in the middle of writing q4's line
    with path.open("a") as fh:
        fh.write('{"method": "direct", "id": "q4", "sour')
    gen2 = ScriptedGenerator(answer_by_question)
    report = evaluate(gen2, gen2.tokenizer, FakeBackend(), examples(), ["direct"], cfg, tmp_path, progress=False)
    assert gen2.batches == [2]  # only q4 and q5 were generated
    ids = [t["id"] for t in read_traces(path)]
    assert ids == ["q1", "q2", "q3", "q4", "q5"]
    assert report.items == 5 and report.new_items == 2
    assert report.results["direct"]["overall"]["exact_match"] == pytest.approx(1 / 5)
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_last_row_without_its_newline_is_kept_and_not_glued_to_the_next(tmp_path):
    path = tmp_path / TRACES_FILE
    path.write_text('{"method": "direct", "id": "q1"}\n{"method": "direct", "id": "q2"}')
    assert [r["id"] for r in read_traces(path)] == ["q1", "q2"]
    assert path.read_text().endswith("}\n")


def test_resume_refuses_other_settings_and_fresh_starts_over(tmp_path):
    gen = ScriptedGenerator(answer_by_question)
    evaluate(gen, gen.tokenizer, FakeBackend(), examples()[:2], ["direct"], _cfg(), tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"other settings \(eval.temperature\).*--fresh"):
        evaluate(gen, gen.tokenizer, FakeBackend(), examples()[:2], ["direct"], _cfg("eval.temperature=0.7"),
                 tmp_path, progress=False)
    report = evaluate(gen, gen.tokenizer, FakeBackend(), examples()[:1], ["direct"], _cfg("eval.temperature=0.7"),
                      tmp_path, progress=False, fresh=True)
    assert report.items == 1 and len(read_traces(tmp_path / TRACES_FILE)) == 1


def test_bad_inputs_give_clear_errors(tmp_path):
    gen = ScriptedGenerator(answer_by_question)
    with pytest.raises(ConfigError, match=r"unknown eval method 'oracle'; valid: direct, cot, rag, agent"):
        get_method("oracle")
    with pytest.raises(ConfigError, match="no questions to evaluate"):
        evaluate(gen, gen.tokenizer, FakeBackend(), [], ["direct"], _cfg(), tmp_path, progress=False)
    (tmp_path / TRACES_FILE).write_text('{"method": "direct", "id": "q1"}\nnot json\n{"method": "direct"}\n')
    with pytest.raises(DataError, match=r"traces.jsonl: row 2 is not valid JSON"):
        read_traces(tmp_path / TRACES_FILE)
