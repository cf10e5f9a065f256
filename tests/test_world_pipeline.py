"""The whole pipeline at micro size: every stage runs, writes its outputs, shows one display and one line per
stage on the terminal (the libraries' output in the stage logs), and a rerun reuses them."""

from __future__ import annotations

import re

import pytest

from zerosearch_rl.cli import main
from zerosearch_rl.evaluate.report import markdown_table
from zerosearch_rl.world.pipeline import BASE_METHODS, RL_RUNS, run_pipeline

pytestmark = pytest.mark.slow

#: What the libraries print when nothing takes it off the terminal: TRL's log dicts, tqdm bars, transformers' bars.
FOREIGN = re.compile(r"\{'loss'|\{'train_runtime'|it/s\]|s/it\]|%\||Loading weights|Writing model shards")
STAGES = ["models", "simulator SFT", *(f"RL with the {name}" for name in RL_RUNS), "evaluation"]


def test_micro_demo_runs_every_stage_shows_one_line_per_stage_and_reuses_them(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws its live displays as on a terminal
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["world", "demo", "--size", "micro", "--out", str(tmp_path)]) == 0
    out, err = capfd.readouterr()
    assert not FOREIGN.search(out + err), FOREIGN.search(out + err)
    assert err == ""
    plain = re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out))  # the display's redraws taken out
    done = [line for line in plain if line.startswith("✓ ")]
    assert [re.fullmatch(r"✓ (.+?)(?:: .*)? \(\d+ s; log \S+\)", line).group(1) for line in done] == STAGES
    logs = {p.name: p.read_text() for p in (tmp_path / "logs").glob("*.log")}
    assert len(logs) == len(STAGES)
    assert re.search(r'zerosearch_rl.simulator_sft.train: step \d+: \{"loss": ', logs["simulator_sft.log"])
    costs = [line for line in plain if line.startswith("RL with the ")]  # the closing summary, one line per run
    assert [line.split(": cost: ")[0] for line in costs] == [f"RL with the {name}" for name in RL_RUNS]
    assert (tmp_path / "cost.txt").read_text().splitlines() == costs

    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("rl/*/final/model.safetensors")}
    result = run_pipeline(tmp_path, "micro")  # cached: no stage trains again, the table is the same
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps and len(stamps) == len(RL_RUNS)
    assert (tmp_path / "table.md").read_text() == markdown_table(result.rows, "exact_match") + "\n"
    labels = [label for label, _ in result.rows]
    assert labels == [*BASE_METHODS.values(), *(f"after RL with the {name}" for name in RL_RUNS)]
    for _, values in result.rows:  # exact match per source and their average, each a rate
        assert set(values) == {"single_hop", "two_hop", "average"} and all(0 <= v <= 1 for v in values.values())
    assert {"untuned", "tuned"} == set(result.scores)
    assert all(r["pages"] == 4 for s in result.scores.values() for r in s["rows"])
    for name in ("table.md", "em.png", "sim/model/config.json", "sim/score_tuned/score.png"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "curves").glob("*.png"))) == len(RL_RUNS)
    assert len(list((tmp_path / "rl").glob("*/final/config.json"))) == len(RL_RUNS)
    assert set(result.costs) == set(RL_RUNS) and all(line.startswith("cost: ") for line in result.costs.values())
