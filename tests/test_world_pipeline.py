"""The whole pipeline at micro size: every stage runs, writes its outputs, and a rerun reuses them."""

from __future__ import annotations

import pytest

from zerosearch_rl.world.pipeline import BASE_METHODS, RL_RUNS, run_pipeline

pytestmark = pytest.mark.slow


def test_micro_pipeline_runs_every_stage_and_reuses_them(tmp_path):
    result = run_pipeline(tmp_path, "micro")
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
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("rl/*/final/model.safetensors")}
    again = run_pipeline(tmp_path, "micro")  # cached: no stage trains again, the table is the same
    assert again.rows == result.rows
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
