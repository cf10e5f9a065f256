"""Comparison tables, `zerosearch eval` / `eval compare` / `ask` on the command line, and their errors."""

from __future__ import annotations

import json

import pytest
from tests.evaluate.scripted import ScriptedGenerator, answer_by_question, examples

from zerosearch_rl import cli
from zerosearch_rl.config import load_config
from zerosearch_rl.data import DataError, write_jsonl
from zerosearch_rl.evaluate import compare, evaluate
from zerosearch_rl.evaluate.ask import ask, coloured
from zerosearch_rl.evaluate.report import SUMMARY_FILE
from zerosearch_rl.search.fake import FakeBackend


def _run(tmp_path, name, reply, methods):
    gen = ScriptedGenerator(reply)
    cfg = load_config(None, ["model.prompt_style=base"])
    return evaluate(gen, gen.tokenizer, FakeBackend(), examples(), methods, cfg, tmp_path / name, name=name,
                    progress=False)


def test_compare_has_the_paper_table_shape(tmp_path):
    _run(tmp_path, "base", answer_by_question, ["direct", "cot"])
    _run(tmp_path, "wrong", lambda ctx: "<answer> no idea </answer>", ["direct"])
    table = compare([tmp_path / "base", tmp_path / "wrong"], "exact_match", tmp_path / "cmp")
    lines = table.splitlines()
    assert lines[0] == "| exact_match (%; Search-R1 EM) | hotpotqa | nq | average |"
    # rows = run: method; average = mean over sources (nq 1/3, hotpotqa 0 -> 16.7), not over questions (20.0)
    assert lines[2] == "| base: direct | 0.0 | 33.3 | 16.7 |"
    assert lines[3] == "| base: cot | 0.0 | 33.3 | 16.7 |"
    assert lines[4] == "| wrong: direct | 0.0 | 0.0 | 0.0 |"
    assert len(lines) == 5
    assert (tmp_path / "cmp.md").read_text().strip() == table
    assert (tmp_path / "cmp.png").stat().st_size > 1000
    same = compare([tmp_path / "base", tmp_path / "base"], "f1").splitlines()  # one name twice: folders tell
    assert same[2].startswith("| base (base): direct |")
    with pytest.raises(DataError, match="unknown metric 'accuracy'; valid: exact_match, cover_em, f1"):
        compare([tmp_path / "base"], "accuracy")
    with pytest.raises(DataError, match=r"no summary\.json"):
        compare([tmp_path / "missing"])


def test_summary_holds_config_versions_and_labelled_metrics(tmp_path):
    report = _run(tmp_path, "base", answer_by_question, ["direct"])
    summary = json.loads((report.out_dir / SUMMARY_FILE).read_text())
    assert summary["config"]["eval"]["temperature"] == 0.0
    assert "torch" in summary["versions"] and "python" in summary["versions"]
    assert summary["questions"]["per_source"] == {"nq": 3, "hotpotqa": 2}
    assert summary["results"]["direct"]["nq"]["cover_em"] == pytest.approx(2 / 3)
    table = (report.out_dir / "table.md").read_text()
    assert "| f1 (%) | hotpotqa | nq | average |" in table
    # ZeroSearch's qa_em.em_check (its validation EM and `em` reward) is a substring test: our cover_em.
    assert "| cover_em (%; ZeroSearch EM) | hotpotqa | nq | average |" in table
    assert "| exact_match (%; Search-R1 EM) | hotpotqa | nq | average |" in table
    assert "- `cover_em`: a normalized gold answer is a substring of the normalized answer: what ZeroSearch's " \
           "code calls EM (`qa_em.em_check`" in table
    assert "| searches (per question) |" in table
    assert (report.out_dir / "chart.png").stat().st_size > 1000


def _agent_reply(context: str) -> str:
    if "Doc 1" in context:
        return "<think> found it </think> <answer> Paris </answer>"
    return "<think> I should look </think> <search> capital of France </search>"


def test_ask_prints_coloured_segments_and_json_fields():
    from rich.console import Console

    gen = ScriptedGenerator(_agent_reply)
    cfg = load_config(None, ["model.prompt_style=base"])
    console = Console(record=True, force_terminal=True, color_system="truecolor", width=200)
    trace = ask(cfg, "Capital of France?", "agent", ["Paris"], console=console, generator=gen,
                tokenizer=gen.tokenizer, backend=FakeBackend(topk=2))
    text = console.export_text(styles=False, clear=False)
    assert text.index("<search> capital of France </search>") < text.index("<information>") < text.index("<answer>")
    styled = console.export_text(styles=True)
    assert "\x1b[1;35m<search> capital of France </search>" in styled  # the search in its colour
    spans = {str(s.style) for s in coloured("<think> a </think> <search> b </search> <answer> c </answer>").spans}
    assert spans == {"italic cyan", "bold magenta", "bold yellow"}
    assert trace["prediction"] == "Paris" and trace["scores"]["exact_match"] == 1.0
    assert trace["searches"][0]["query"] == "capital of France" and trace["engine"] == "fake"
    silent = ask(cfg, "Capital of France?", "agent", (), generator=gen, tokenizer=gen.tokenizer,
                 backend=FakeBackend(topk=2))
    assert "scores" not in silent and json.dumps(silent)  # no gold: no scores; JSON-serializable


@pytest.mark.slow
def test_cli_eval_then_compare_and_one_line_errors(tmp_path, capsys):
    data = write_jsonl(examples(), tmp_path / "qa.jsonl")
    argv = ["eval", "--data", str(data), "--limit", "2", "--methods", "direct", "--out", str(tmp_path / "run"),
            "model.policy=tiny-random", "eval.answer_max_new_tokens=4"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "2 items (2 new)" in out
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["results"]["direct"]["overall"]["n"] == 2.0
    assert summary["config"]["eval"]["limit"] == 2
    assert cli.main([*argv, "--limit", "3"]) == 0  # resumed: only the third question is new
    assert "3 items (1 new)" in capsys.readouterr().out
    assert cli.main(["eval", "compare", str(tmp_path / "run"), "--metric", "f1"]) == 0
    assert capsys.readouterr().out.startswith("| f1 (%) | nq | average |")

    assert cli.main(["eval", "--data", str(data), "eval.methods=[oracle]"]) == 2
    err = capsys.readouterr().err
    assert "eval.methods: 'oracle' is not valid; valid: direct, cot, rag, agent, agent_forced, agent_prefixed" in err
    assert cli.main(["eval", "--data", str(tmp_path / "nope.jsonl"), "model.policy=tiny-random"]) == 2
    assert "nope.jsonl' does not exist" in capsys.readouterr().err
    assert cli.main(["eval", "--data", str(data), "--methods", "direct", "model.policy=" + str(tmp_path / "x")]) == 2
    assert f"model.policy: '{tmp_path / 'x'}' does not exist" in capsys.readouterr().err
    assert cli.main(["eval", "compare", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err


def test_cli_ask_json(tmp_path, capsys):
    assert cli.main(["ask", "Where is Marlow?", "--json", "--method", "direct", "model.policy=tiny-random",
                     "eval.answer_max_new_tokens=3"]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["question"] == "Where is Marlow?" and trace["method"] == "direct"
    assert set(trace) >= {"response", "prediction", "searches", "model", "engine", "seconds", "prompt"}
    assert trace["engine"] == "none"  # direct never searches: no engine was built
