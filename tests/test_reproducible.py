"""An RL run is bit-reproducible for its seed on one machine: the demo's RL stage run twice, every metric equal.

The shipped demo models with a few steps of small groups and the untuned simulator
as the engine: the policy samples, searches, the simulator writes pages, the noise curriculum draws, the
update runs — and the two runs' metrics.jsonl agree on every value but the wall-clock ones, and their final
weights are equal. docs/tiny-world.md says what this does and does not promise across machines.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from zerosearch_rl.tracking import read_metrics
from zerosearch_rl.world.pipeline import SHIPPED, Plan, train_policy

pytestmark = pytest.mark.slow

#: The only values allowed to differ: wall-clock seconds (the step's phases, the engine's time and latency).
TIMINGS = ("time/", "search/latency_s", "search/busy_s")


def test_the_rl_stage_run_twice_with_one_seed_gives_the_same_metrics_and_weights(tmp_path):
    # two steps of 16 episodes, with the preset's turn length (the micro plan's 12 tokens cut the answers short)
    plan = Plan("micro", rl=("trainer.total_steps=2", "trainer.batch_size=4", "rollout.n_samples=4",
                             "trainer.micro_batch_size=16", "trainer.eval_every=0", "curriculum.steps=2",
                             "simulator.max_new_tokens=40"))
    finals = [train_policy(SHIPPED, tmp_path / run, plan, tmp_path / "unused", "simulator, no SFT")
              for run in ("a", "b")]
    a, b = (read_metrics(final.parent) for final in finals)
    assert len(a) == len(b) == 2
    assert a[-1]["search/queries"] > 0  # the engine served pages: they are compared too
    assert any(row["actor/grad_norm"] > 0 for row in a)  # rewards varied in a group: the update is compared too
    timings = {k for row in a for k in row if k.startswith(TIMINGS)}
    assert {"time/step", "time/generate", "search/busy_s"} <= timings
    for row_a, row_b in zip(a, b, strict=True):
        assert {k: v for k, v in row_a.items() if k not in timings} == {
            k: v for k, v in row_b.items() if k not in timings}
    wa, wb = (load_file(final / "model.safetensors") for final in finals)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], load_file(SHIPPED / "policy" / "model.safetensors")[k]) for k in wa)
