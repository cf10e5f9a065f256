from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerosearch_rl.curriculum import SCHEDULES, NoiseSchedule, is_noisy

ZEROSEARCH = NoiseSchedule("exponential", start=0.0, end=0.5, steps=203, base=4.0)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.0), (1, 0.0011), (50, 0.0678), (100, 0.1633), (150, 0.2975), (202, 0.4955), (203, 0.5), (500, 0.5)],
)
def test_zerosearch_schedule_values(step, expected):
    # The paper's curriculum, 0 -> 0.5 over 203 steps with b = 4, to four decimals.
    assert round(ZEROSEARCH.probability(step), 4) == expected


def test_exponential_matches_formula_with_other_base_and_start():
    s = NoiseSchedule("exponential", start=0.1, end=0.9, steps=10, base=2.0)
    for i in range(10):
        assert s.probability(i) == pytest.approx(0.1 + (2 ** (i / 10) - 1) / (2 - 1) * 0.8)


def test_exponential_with_base_below_one_grows_fast_first():
    s = NoiseSchedule("exponential", start=0.0, end=1.0, steps=100, base=0.25)
    assert s.probability(10) > 0.1  # concave: ahead of linear early on
    assert s.probability(100) == 1.0


def test_linear_constant_and_step():
    assert NoiseSchedule("linear", 0.2, 0.6, steps=4).probability(1) == pytest.approx(0.3)
    assert NoiseSchedule("constant", 0.0, 0.3, steps=4).probability(0) == 0.3
    assert NoiseSchedule("constant", 0.0, 0.3, steps=4).probability(1000) == 0.3
    one_jump = NoiseSchedule("step", 0.0, 0.5, steps=10)
    assert [one_jump.probability(i) for i in (0, 9, 10)] == [0.0, 0.0, 0.5]
    stairs = NoiseSchedule("step", 0.0, 1.0, steps=8, stairs=4)
    assert [stairs.probability(i) for i in (0, 1, 2, 5, 7, 8)] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]


def test_decreasing_curriculum_is_allowed():
    s = NoiseSchedule("linear", start=0.8, end=0.2, steps=3)
    assert s.probability(0) > s.probability(1) > s.probability(2) > s.probability(3) == 0.2


@given(
    kind=st.sampled_from(SCHEDULES),
    start=st.floats(0, 1),
    end=st.floats(0, 1),
    steps=st.integers(1, 10_000),
    base=st.floats(0.01, 100).filter(lambda b: abs(b - 1) > 1e-6),
    stairs=st.integers(1, 50),
    step=st.integers(0, 20_000),
)
@settings(max_examples=300, deadline=None)
def test_any_schedule_stays_between_its_ends(kind, start, end, steps, base, stairs, step):
    p = NoiseSchedule(kind, start, end, steps, base, stairs).probability(step)
    assert min(start, end) - 1e-12 <= p <= max(start, end) + 1e-12
    if step >= steps:
        assert p == end


@given(steps=st.integers(2, 2000), base=st.floats(1.01, 50))
@settings(max_examples=100, deadline=None)
def test_increasing_schedules_are_monotone(steps, base):
    for kind in ("exponential", "linear", "step"):
        s = NoiseSchedule(kind, 0.0, 0.5, steps, base, stairs=3)
        values = [s.probability(i) for i in range(0, steps + 2, max(1, steps // 50))]
        assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cosine"}, "valid: exponential, linear, constant, step"),
        ({"start": -0.1}, "start must be a probability"),
        ({"end": 1.5}, "end must be a probability"),
        ({"steps": 0}, "steps must be >= 1"),
        ({"base": 1.0}, "base must be > 0 and != 1"),
        ({"base": -2.0}, "base must be > 0 and != 1"),
        ({"kind": "step", "stairs": 0}, "stairs must be >= 1"),
    ],
)
def test_bad_schedules_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NoiseSchedule(**kwargs)


def test_negative_step_is_an_error():
    with pytest.raises(ValueError, match="step must be >= 0"):
        ZEROSEARCH.probability(-1)


def test_is_noisy_is_reproducible_and_depends_on_every_key():
    base = [is_noisy(7, 3, f"s{i}", 1, 0.5) for i in range(200)]
    assert base == [is_noisy(7, 3, f"s{i}", 1, 0.5) for i in range(200)]
    for other in (
        [is_noisy(8, 3, f"s{i}", 1, 0.5) for i in range(200)],  # seed
        [is_noisy(7, 4, f"s{i}", 1, 0.5) for i in range(200)],  # step
        [is_noisy(7, 3, f"s{i}", 2, 0.5) for i in range(200)],  # turn
    ):
        assert other != base


def test_is_noisy_ignores_the_global_rng():
    import random

    random.seed(1)
    first = [is_noisy(0, 0, i, 0, 0.5) for i in range(50)]
    random.seed(2)
    assert first == [is_noisy(0, 0, i, 0, 0.5) for i in range(50)]
    assert random.random() == random.Random(2).random()  # and does not consume it


def test_is_noisy_edges_and_rate():
    assert not any(is_noisy(0, s, "x", t, 0.0) for s in range(100) for t in range(5))
    assert all(is_noisy(0, s, "x", t, 1.0) for s in range(100) for t in range(5))
    draws = Counter(is_noisy(0, 0, i, 0, 0.3) for i in range(20_000))
    rate = draws[True] / 20_000
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 20_000)


def test_is_noisy_int_and_str_sample_ids_agree():
    # Ids travel as strings through JSON and checkpoints; the draw must not change with the type.
    assert [is_noisy(1, 2, i, 0, 0.5) for i in range(100)] == [is_noisy(1, 2, str(i), 0, 0.5) for i in range(100)]


def test_is_noisy_rejects_bad_probability():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        is_noisy(0, 0, "a", 0, 1.2)
