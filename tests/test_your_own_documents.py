"""docs/your-own-documents.md, run as written: its files are written out and its commands run, in order.

The page's blocks with a ``title="PATH"`` are the files; every ``zerosearch`` line of its ``bash`` blocks
is a command. The fast test runs the data check and the first search; the slow one runs the whole chain
(simulator SFT, RL through the tuned simulator, evaluation with BM25) and checks what each stage wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doc_pages import ROOT, blocks, commands
from zerosearch_rl.cli import main
from zerosearch_rl.config import load_config
from zerosearch_rl.data import load_examples
from zerosearch_rl.evaluate.report import read_json

PAGE = ROOT / "docs" / "your-own-documents.md"


def page_files() -> dict[str, str]:
    return {b.title: b.text for b in blocks(PAGE.read_text(encoding="utf-8")) if b.title}


def page_commands() -> list[list[str]]:
    lines = [c for b in blocks(PAGE.read_text(encoding="utf-8")) if b.language == "bash" for c in commands(b)]
    assert all(c[0] == "zerosearch" for c in lines), "every command of the page is a zerosearch command"
    return [c[1:] for c in lines]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    for name, text in page_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(argv: list[str]) -> None:
    assert main(argv) == 0, f"zerosearch {' '.join(argv)} failed"


def test_the_page_shows_every_stage_in_order():
    stages = [" ".join(c[:2]) if c[0] in ("sim", "data") else c[0] for c in page_commands()]
    assert stages == ["data check", "search", "sim collect", "sim label", "sim train", "sim score", "train",
                      "eval", "eval", "eval"]
    files = page_files()
    assert set(files) == {"my_docs/corpus.jsonl", "my_docs/train.jsonl", "my_docs/test.jsonl",
                          "my_docs/zerosearch.yaml"}


def test_data_check_and_index_of_the_pages_files(workdir, capsys):
    check, search = page_commands()[:2]
    run(check)
    assert "12 examples" in capsys.readouterr().out
    cfg = load_config("my_docs/zerosearch.yaml", [])
    train = {e.id for e in load_examples(cfg.data.train_files)}
    test = {e.id for e in load_examples(cfg.data.eval_files)}
    assert train and test and not train & test
    run(search)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("Doc 1 (Title: Oslo office)")
    assert any((workdir / "runs/my_docs/index").iterdir())  # the index went where the config says


@pytest.mark.slow
def test_the_whole_walk_through_runs_as_written(workdir, capsys):
    cmds = page_commands()
    for argv in cmds[:6]:  # data check, search, sim collect | label | train | score
        run(argv)
    cfg = load_config("my_docs/zerosearch.yaml", [])
    sft = [json.loads(line) for line in Path(cfg.sim.sft_path).read_text().splitlines()]
    assert {r["label"] for r in sft} == {"useful", "noisy"}
    assert all(r["completion"].startswith("Doc 1:") for r in sft)
    useful = [r for r in sft if r["label"] == "useful"]
    assert all(a in r["completion"] for r in useful for a in r["answers"][:1])  # the engine's page holds it
    heldout = Path(cfg.sim.heldout_path).read_text().splitlines()
    assert heldout and not {json.loads(h)["question"] for h in heldout} & {r["question"] for r in sft}
    assert (Path(cfg.simulator.model) / "config.json").is_file()
    assert read_json(Path(cfg.sim.score_dir) / "score.json")["pairs"] == len(heldout)

    run(cmds[6])  # train
    run_dir = Path(cfg.trainer.output_dir)
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == cfg.trainer.total_steps
    assert (run_dir / "final" / "config.json").is_file()
    assert load_config(str(run_dir / "config.yaml"), []).search.backend == "simulate_sft"

    for argv in cmds[7:9]:  # eval base, eval trained
        run(argv)
    capsys.readouterr()
    run(cmds[9])  # eval compare
    table = capsys.readouterr().out
    base = read_json(Path("runs/my_docs/eval_base/summary.json"))
    trained = read_json(Path(cfg.eval.output_dir) / "summary.json")
    assert (base["name"], trained["name"]) == ("base", "trained")
    assert "base" in table and "trained" in table
    # the real engine over the page's corpus finds the answer of every test question (the page says so)
    assert trained["results"]["rag"]["overall"]["answer_in_documents"] == 1.0
