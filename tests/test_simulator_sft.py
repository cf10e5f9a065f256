"""Simulator fine-tuning without a model: collection (and its resumption), judges, balancing, the SFT set,
scoring arithmetic and the CLI's errors."""

from __future__ import annotations

import json

import pytest

from fakes.search_records import record
from zerosearch_rl.cli import main
from zerosearch_rl.config import ConfigError
from zerosearch_rl.data import DataError, load_examples
from zerosearch_rl.generation.base import Generated
from zerosearch_rl.llm.base import Completion
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.protocol import render_information
from zerosearch_rl.records import Document, QAExample, SearchRequest
from zerosearch_rl.search.bm25 import BM25Backend
from zerosearch_rl.search.simulated import build_simulator_prompt, parse_documents
from zerosearch_rl.simulator_sft import (
    AnswerInDocsJudge,
    OutcomeJudge,
    PolicyCollector,
    ScriptedCollector,
    collect_searches,
    label_records,
    read_records,
    read_sft_set,
    score_simulator,
    write_score,
    write_sft_set,
)
from zerosearch_rl.simulator_sft.label import balance
from zerosearch_rl.simulator_sft.records import write_records
from zerosearch_rl.tiny_models import byte_tokenizer

SUBS = {"country-0": ["Where was Ada Kowalski born?", "Which country is Marlow in?"],
        "founded-1": ["Which company does Dario Benn work for?", "When was Northgate Rail founded?"]}


def examples() -> list[QAExample]:
    out = []
    for ex in load_examples(asset("mini_qa.jsonl")):
        if ex.id in SUBS:
            ex = QAExample(ex.id, ex.question, ex.answers, ex.source, {"sub_questions": SUBS[ex.id]})
        out.append(ex)
    return out


@pytest.fixture(scope="module")
def engine() -> BM25Backend:
    return BM25Backend(asset("mini_corpus.jsonl"), topk=3)


# ------------------------------------------------------------------ collect


def test_scripted_collector_searches_question_then_sub_questions(tmp_path, engine):
    report = collect_searches(examples(), ScriptedCollector(), engine, tmp_path / "s.jsonl", show_progress=False)
    records = read_records(tmp_path / "s.jsonl")
    assert report.written == len(records) == 18 + 4
    two_hop = [r for r in records if r.example_id == "country-0"]
    assert [r.query for r in two_hop] == ["In which country was Ada Kowalski born?", *SUBS["country-0"]]
    assert [r.id for r in two_hop] == ["country-0/0", "country-0/1", "country-0/2"]
    assert all(r.searches == 3 and r.answers == ("Veland",) for r in two_hop)
    marlow = two_hop[2]  # the engine's own documents for "Which country is Marlow in?"
    assert marlow.documents == tuple(engine.search([SearchRequest(query=marlow.query)])[0])
    assert any("Veland" in d.text for d in marlow.documents)


def test_scripted_collector_also_searches_keyword_queries_once_each(tmp_path, engine):
    ex = QAExample("k1", "Where was Ada Kowalski born?", ("Marlow",), "single_hop",
                   {"sub_questions": ["Where was Ada Kowalski born?"], "queries": ["Ada Kowalski born", "Marlow"]})
    collect_searches([ex], ScriptedCollector(), engine, tmp_path / "k.jsonl", show_progress=False)
    records = read_records(tmp_path / "k.jsonl")
    assert [r.query for r in records] == ["Where was Ada Kowalski born?", "Ada Kowalski born", "Marlow"]
    bad = QAExample("k2", "Who?", ("x",), metadata={"queries": [""]})
    with pytest.raises(DataError, match=r"example 'k2', field 'queries': expected a list"):
        ScriptedCollector().run([bad], engine)


def test_bad_sub_questions_name_the_example():
    ex = QAExample("q1", "Who?", ("x",), metadata={"sub_questions": "not a list"})
    with pytest.raises(DataError, match=r"example 'q1', field 'sub_questions': expected a list"):
        ScriptedCollector().run([ex], BM25Backend(asset("mini_corpus.jsonl")))


class FailingEngine:
    """Passes searches through, then raises on the ``fail_on``-th batch (an interrupted collection)."""

    def __init__(self, inner, fail_on: int) -> None:
        self.inner, self.name, self.fail_on, self.calls = inner, inner.name, fail_on, 0

    def search(self, requests):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt
        return self.inner.search(requests)


def test_interrupted_collection_resumes_without_loss_or_duplicates(tmp_path, engine):
    clean = tmp_path / "clean.jsonl"
    collect_searches(examples(), ScriptedCollector(), engine, clean, batch_size=3, show_progress=False)
    expected = clean.read_text().splitlines()

    path = tmp_path / "s.jsonl"
    with pytest.raises(KeyboardInterrupt):
        collect_searches(examples(), ScriptedCollector(), FailingEngine(engine, 3), path, batch_size=3,
                         show_progress=False)
    assert path.read_text().splitlines() == expected[:6]
    # then a unit cut short (country-0 has 3 records: keep 1) and a write cut mid-line
    lines = [*expected[:10], next(x for x in expected if x.startswith('{"id": "country-0/0"'))]
    path.write_text("\n".join(lines) + "\n" + expected[11][:40])
    report = collect_searches(examples(), ScriptedCollector(), engine, path, batch_size=3, show_progress=False)
    rows = path.read_text().splitlines()
    assert sorted(rows) == sorted(expected)  # every record, once, byte for byte
    assert rows[:11] == lines  # nothing already written was touched
    assert report.resumed == 11 and report.written == len(expected) - 11

    again = collect_searches(examples(), ScriptedCollector(), engine, path, show_progress=False)
    assert again.written == 0 and again.skipped_units == again.units == 18
    assert path.read_text().splitlines() == rows


def test_corrupt_line_in_the_middle_is_an_error_not_truncated(tmp_path, engine):
    path = tmp_path / "s.jsonl"
    collect_searches(examples()[:3], ScriptedCollector(), engine, path, show_progress=False)
    lines = path.read_text().splitlines()
    path.write_text(f"{lines[0]}\n{{broken\n{lines[2]}\n")
    with pytest.raises(DataError, match=r"s\.jsonl: row 2: not valid JSON"):
        collect_searches(examples(), ScriptedCollector(), engine, path, show_progress=False)


class PatchyEngine:
    """Fails on queries mentioning Marlow (as FailSoftBackend reports it), finds nothing for Veland."""

    name = "patchy"

    def search(self, requests):
        from zerosearch_rl.search.base import failure_document

        return [[failure_document("timeout")] if "Marlow" in r.query else [] if "Veland" in r.query
                else [Document("d", "", f"about {r.query}")] for r in requests]


def test_failed_searches_are_not_recorded_but_retried_and_empty_pages_are_recorded(tmp_path):
    ex = QAExample("q", "Who lives in Marlow?", ("x",), metadata={"sub_questions": ["Where is Veland?", "Who?"]})
    report = collect_searches([ex], ScriptedCollector(), PatchyEngine(), tmp_path / "s.jsonl", show_progress=False)
    records = read_records(tmp_path / "s.jsonl")
    assert [(r.id, len(r.documents), r.searches) for r in records] == [("q/1", 0, 3), ("q/2", 1, 3)]
    assert (report.failed_searches, report.empty_pages, report.written) == (1, 1, 2)
    assert "1 empty pages, 1 failed searches not recorded (a rerun retries them)" in report.summary()
    rerun = collect_searches([ex], ScriptedCollector(), BM25Backend(asset("mini_corpus.jsonl")), tmp_path / "s.jsonl",
                             show_progress=False)
    assert rerun.written == 1 and [r.id for r in read_records(tmp_path / "s.jsonl")] == ["q/1", "q/2", "q/0"]


class ScriptedPolicy:
    """Searches the person's name, then answers with the last word of what it read (or a wrong town)."""

    def __init__(self, tok, wrong: set[str]) -> None:
        self.tok, self.wrong = tok, wrong

    def generate(self, prompts, max_new_tokens, sampling):
        out = []
        for p in prompts:
            text = self.tok.decode(p).split("Question: ")[1]
            name = text.split(" born")[0].replace("Where was ", "")
            if "<information>" not in text:
                reply = f"<search> {name} </search>"
            else:
                town = "Quenby" if name in self.wrong else text.split(" born in ")[1].split(".")[0]
                reply = f"<answer> {town} </answer>"
            ids = self.tok(reply, add_special_tokens=False)["input_ids"]
            out.append(Generated(ids, [0.0] * len(ids), "stop"))
        return out


def test_policy_collector_records_searches_answers_and_scores(tmp_path, engine):
    from zerosearch_rl.config import RolloutConfig
    from zerosearch_rl.generation.sampling import Sampling

    tok = byte_tokenizer()
    born = [e for e in examples() if e.id.startswith("born-")][:3]
    collector = PolicyCollector(ScriptedPolicy(tok, {"Tomas Varga"}), tok, RolloutConfig(max_turns=3),
                                Sampling(), samples=2, prompt_style="base")
    collect_searches(born, collector, engine, tmp_path / "p.jsonl", show_progress=False)
    records = read_records(tmp_path / "p.jsonl")
    assert [r.id for r in records] == [f"born-{i}#{k}/0" for i in range(3) for k in range(2)]
    assert records[0].query == "Ada Kowalski" and records[0].collector == "policy" and records[0].engine == "bm25"
    by_example = {r.example_id: r for r in records}
    assert by_example["born-0"].final_answer == "Marlow" and by_example["born-0"].score == 1.0
    assert by_example["born-1"].final_answer == "Quenby" and by_example["born-1"].score == 0.0


# ------------------------------------------------------------------ label


def test_answer_in_docs_judge():
    useful = record("u", ["Ada was born in MARLOW, a small town.", "Other text."])
    noisy = record("n", ["Ada Kowalski is an astronomer.", "Marl is not the town."])
    assert AnswerInDocsJudge().judge([useful, noisy]) == [True, False]


def test_outcome_judge_and_its_missing_score_error():
    assert OutcomeJudge(1.0).judge([record("a", ["x"], score=1.0), record("b", ["x"], score=0.4)]) == [True, False]
    assert OutcomeJudge(0.3).judge([record("b", ["x"], score=0.4)]) == [True]
    with pytest.raises(DataError, match=r"record 'c'.*field 'score': missing; judge=outcome needs"):
        OutcomeJudge().judge([record("c", ["x"])])


def test_balance_is_seeded_and_even():
    records = [record(f"u{i}", ["x"], "useful") for i in range(7)] + [record(f"n{i}", ["x"], "noisy") for i in range(3)]
    kept = balance(records, seed=1)
    assert sum(r.label == "useful" for r in kept) == sum(r.label == "noisy" for r in kept) == 3
    assert [r.id for r in balance(records, seed=1)] == [r.id for r in kept]
    assert {r.id for r in kept} >= {"n0", "n1", "n2"}


def test_label_records_balances_reports_and_leaves_out_empty_pages(tmp_path):
    records = [record(f"u{i}", ["born in Marlow"]) for i in range(5)] + [record(f"n{i}", ["nothing"]) for i in range(2)]
    write_records([*records, record("empty", [])], tmp_path / "s.jsonl")
    report = label_records(tmp_path / "s.jsonl", tmp_path / "l.jsonl", AnswerInDocsJudge(), seed=0,
                           show_progress=False)
    assert report.judged == {"useful": 5, "noisy": 2} and report.kept == {"useful": 2, "noisy": 2}
    assert report.empty_pages == 1 and "useful 5 (71%)" in report.summary()
    labelled = read_records(tmp_path / "l.jsonl", labelled=True)
    assert {r.id for r in labelled} >= {"n0", "n1"} and all(r.judge == "answer_in_docs" for r in labelled)


def test_label_records_with_one_class_only_is_a_clear_error(tmp_path):
    write_records([record("u", ["Marlow"])], tmp_path / "s.jsonl")
    with pytest.raises(DataError, match=r"found no noisy page among 1.*sim.balance=false"):
        label_records(tmp_path / "s.jsonl", tmp_path / "l.jsonl", AnswerInDocsJudge(), show_progress=False)


# ------------------------------------------------------------------ SFT set


def test_sft_set_prompt_is_the_simulate_sft_prompt_and_completion_round_trips(tmp_path):
    useful = record("u", ["Ada Kowalski was born in Marlow.", "Marlow is in\nVeland."], "useful", example="a")
    noisy = record("n", ["Ada Kowalski is an astronomer."], "noisy", example="b")
    write_records([useful, noisy], tmp_path / "l.jsonl")
    sft = write_sft_set(tmp_path / "l.jsonl", tmp_path / "sft.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert sft.rows == 2 and sft.heldout_path is None
    for row, r in zip(rows, (useful, noisy), strict=True):
        request = SearchRequest(query=r.query, question=r.question, answers=r.answers, noisy=r.label == "noisy")
        assert row["prompt"] == build_simulator_prompt(request, "sft")
        docs, clean = parse_documents(row["completion"], topk=5)
        # titles and texts come back as they were (texts on one line), so the policy's information block
        # renders a simulated page exactly as the engine's
        assert clean and [(d.title, d.text) for d in docs] == [(d.title, " ".join(d.text.split())) for d in r.documents]
        assert render_information(docs) == render_information(r.documents)
    assert rows[1]["prompt"].endswith("Query: Ada Kowalski birthplace\nNoisy Output:\n")
    assert read_sft_set(tmp_path / "sft.jsonl")[0] == {"prompt": rows[0]["prompt"], "completion": rows[0]["completion"]}


def test_heldout_questions_never_reach_the_sft_set(tmp_path):
    records = [record(f"{q}/{t}", ["Marlow"] if t else ["x"], "useful" if t else "noisy", example=q)
               for q in "abcdefghij" for t in range(2)]
    write_records(records, tmp_path / "l.jsonl")
    sft = write_sft_set(tmp_path / "l.jsonl", tmp_path / "sft.jsonl", tmp_path / "h.jsonl", 0.3, seed=4)
    held = {r.example_id for r in read_records(tmp_path / "h.jsonl")}
    trained = {json.loads(x)["example_id"] for x in (tmp_path / "sft.jsonl").read_text().splitlines()}
    assert len(held) == 3 and not held & trained and held | trained == set("abcdefghij")
    assert sft.rows == 14 and sft.heldout == 6


def test_swapped_noisy_pages_give_each_useful_query_a_page_without_its_answer(tmp_path):
    import dataclasses

    pages = {"Ada Kowalski born": ("Marlow", "Ada Kowalski was born in Marlow."),
             "Bo Lund born": ("Veland", "Bo Lund was born in Veland."),
             "Cy Marr born": ("Marlow", "Cy Marr was born in Marlow.")}
    useful = [dataclasses.replace(record(f"u{i}", [text], "useful", example=f"e{i}"), query=q, answers=(a,))
              for i, (q, (a, text)) in enumerate(pages.items())]
    judged = record("n", ["Ada Kowalski is an astronomer."], "noisy", example="n")
    write_records([*useful, judged], tmp_path / "l.jsonl")
    sft = write_sft_set(tmp_path / "l.jsonl", tmp_path / "sft.jsonl", noisy_pages="swapped", seed=3)
    rows = [json.loads(line) for line in (tmp_path / "sft.jsonl").read_text().splitlines()]
    noisy = {r["query"]: r for r in rows if r["label"] == "noisy"}
    # the judged noisy page is replaced; both Marlow pages can only be paired with Bo Lund's page
    assert sft.labels == {"useful": 3, "noisy": 3} and set(noisy) == set(pages)
    assert "Bo Lund was born in Veland." in noisy["Ada Kowalski born"]["completion"]
    assert "Bo Lund was born in Veland." in noisy["Cy Marr born"]["completion"]
    assert "Marlow" in noisy["Bo Lund born"]["completion"]
    assert all(r["prompt"].endswith(f"Query: {q}\nNoisy Output:\n") for q, r in noisy.items())
    with pytest.raises(ConfigError, match=r"sim\.noisy_pages: .mixed. is not valid; valid: judged, swapped"):
        write_sft_set(tmp_path / "l.jsonl", tmp_path / "sft.jsonl", noisy_pages="mixed")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda row: row.pop("query"), r"l\.jsonl: row 2: missing field 'query'"),
    (lambda row: row.update(documents=[]), r"l\.jsonl: row 2, field 'documents': empty"),
    (lambda row: row.update(documents=[{"id": "1", "text": " "}]), r"row 2, field 'documents\[0\]'.text: expected a"),
    (lambda row: row.pop("label"), r"row 2: missing field 'label' \(label the searches"),
    (lambda row: row.update(label="great"), r"row 2, field 'label': 'great' is not valid; valid: useful, noisy"),
    (lambda row: row.update(turn="1"), r"row 2, field 'turn': expected an integer, got '1'"),
])
def test_bad_labelled_rows_name_file_row_and_field(tmp_path, edit, message):
    rows = [record(f"r{i}", ["Marlow"], "useful").to_json() for i in range(2)]
    edit(rows[1])
    (tmp_path / "l.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=message):
        write_sft_set(tmp_path / "l.jsonl", tmp_path / "sft.jsonl")


def test_bad_sft_rows_name_file_row_and_field(tmp_path):
    (tmp_path / "sft.jsonl").write_text('{"prompt": "p", "completion": "Doc 1: x"}\n{"prompt": "p"}\n')
    with pytest.raises(DataError, match=r"sft\.jsonl: row 2, field 'completion': expected a non-empty string"):
        read_sft_set(tmp_path / "sft.jsonl")


# ------------------------------------------------------------------ score


class FakeSimulator:
    """Useful pages: one document with the answer out of two; noisy pages: none; the answer is read from the
    prompt, as a simulator does."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, messages, sampling):
        self.prompts.extend(messages)
        out = []
        for m in messages:
            answer = m.split("whose answer is ")[1].split(".\n")[0]
            text = (f"Doc 1: It is {answer}.\nDoc 2: Something else." if "Useful Output:" in m
                    else "Here you go:\nDoc 1: Unrelated.")
            out.append(Completion(text, completion_tokens=10 if "Useful" in m else 4, latency_s=0.5))
        return out

    def close(self):
        return None


def test_score_measures_each_mode_beside_the_real_engine(tmp_path):
    records = [record(f"r{i}", ["born in Marlow", "x", "y"] if i % 2 else ["x", "y", "z"]) for i in range(4)]
    sim = FakeSimulator()
    report = score_simulator(records, sim, "fake", topk=5, show_progress=False)
    assert sim.prompts[0] == build_simulator_prompt(SearchRequest(query=records[0].query,
                                                                  question=records[0].question,
                                                                  answers=("Marlow",)), "sft")
    real, useful, noisy = report.rows
    assert (real.doc_containment, real.page_containment, real.docs_per_page) == (2 / 12, 0.5, 3.0)
    assert (useful.doc_containment, useful.page_containment, useful.answer_docs_per_page) == (0.5, 1.0, 1.0)
    assert (useful.format_valid, useful.tokens_per_query, useful.latency_s_per_query) == (1.0, 10, 0.5)
    assert (noisy.doc_containment, noisy.docs_per_page, noisy.format_valid) == (0.0, 1.0, 0.0)  # preamble: not clean
    assert report.containment_ratio == float("inf")
    paths = write_score(report, tmp_path / "score")
    saved = json.loads(paths["json"].read_text())
    assert saved["rows"][1]["doc_containment"] == 0.5 and saved["containment_ratio"] is None
    assert "| simulator useful | 4 | 50.0% | 100.0% |" in paths["markdown"].read_text()
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ CLI


def test_cli_collect_and_label_on_the_mini_assets(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = ["--config", "configs/sim_sft_mini.yaml", f"sim.records_path={runs}/s.jsonl",
            f"sim.labelled_path={runs}/l.jsonl", f"sim.sft_path={runs}/sft.jsonl", f"sim.heldout_path={runs}/h.jsonl"]
    assert main(["sim", "collect", *args]) == 0
    assert main(["sim", "label", *args]) == 0
    out = capsys.readouterr().out
    assert "18 records written" in out and "judged useful 12 (67%), noisy 6 (33%)" in out
    assert len(read_sft_set(runs / "sft.jsonl")) + len(read_records(runs / "h.jsonl")) == 12


@pytest.mark.parametrize(("argv", "message"), [
    (["sim", "collect"], "sim collect needs data.train_files"),
    (["sim", "label", "sim.judge=llm"], "sim.judge=llm needs sim.judge_base_urls"),
    (["sim", "label", "sim.judge=oracle"], "sim.judge: 'oracle' is not valid; valid: answer_in_docs, outcome, llm"),
    (["sim", "train", "sim.sft_path=/nonexistent/sft.jsonl", "sim.base_model=tiny-random"],
     "SFT set '/nonexistent/sft.jsonl' does not exist"),
    (["sim", "score", "sim.heldout_path=/nonexistent/h.jsonl"], "records file '/nonexistent/h.jsonl' does not exist"),
    (["sim", "collect", "sim.engine=simulate_sft"], "sim.engine must be a real engine"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_score_names_what_is_missing(tmp_path, capsys):
    held = tmp_path / "h.jsonl"
    held.write_text("")
    assert main(["sim", "score", f"sim.heldout_path={held}"]) == 2
    assert "h.jsonl: no held-out pages (set sim.heldout_share above 0" in capsys.readouterr().err
    write_records([record("r", ["Marlow"], "useful")], held)
    assert main(["sim", "score", f"sim.heldout_path={held}", "sim.output_dir=/nonexistent/model"]) == 2
    assert "no simulator model at '/nonexistent/model' (run `zerosearch sim train`" in capsys.readouterr().err
