"""The learning-rate factor of ``trainer.lr_schedule``: warm-up, then constant, linear or cosine decay."""

from __future__ import annotations

import pytest

from zerosearch_rl.lr_schedule import lr_multiplier


@pytest.mark.parametrize(
    ("step", "total", "warmup", "schedule", "floor", "expected"),
    [
        (0, 10, 0, "constant", 0.0, 1.0),
        (9, 10, 0, "constant", 0.0, 1.0),
        (0, 10, 4, "constant", 0.0, 0.25),  # warm-up: (step + 1) / warmup_steps
        (3, 10, 4, "constant", 0.0, 1.0),
        (0, 10, 0, "linear", 0.0, 1.0),
        (5, 10, 0, "linear", 0.0, 0.5),
        (10, 10, 0, "linear", 0.0, 0.0),
        (50, 10, 0, "linear", 0.0, 0.0),  # past total_steps: stays at the floor
        (5, 10, 0, "linear", 0.2, 0.6),  # floor + (1 - floor) * 0.5
        (1, 10, 2, "linear", 0.0, 1.0),  # last warm-up step
        (6, 10, 2, "linear", 0.0, 0.5),  # decay spans the 8 steps after the warm-up
        (0, 10, 0, "cosine", 0.0, 1.0),
        (5, 10, 0, "cosine", 0.0, 0.5),
        (10, 10, 0, "cosine", 0.1, 0.1),
        (5, 10, 0, "cosine", 0.1, 0.55),
    ],
)
def test_lr_multiplier_table(step, total, warmup, schedule, floor, expected):
    assert lr_multiplier(step, total, warmup, schedule, floor) == pytest.approx(expected)


def test_cosine_decays_slower_than_linear_early_and_faster_late():
    assert lr_multiplier(2, 10, 0, "cosine") > lr_multiplier(2, 10, 0, "linear")
    assert lr_multiplier(8, 10, 0, "cosine") < lr_multiplier(8, 10, 0, "linear")


def test_unknown_schedule_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: constant, linear, cosine"):
        lr_multiplier(5, 10, 0, "step")
