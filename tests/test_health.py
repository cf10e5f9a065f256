"""The health watch on scripted metric sequences: each row's firing steps are computed by hand in its comment."""

from __future__ import annotations

import pytest

from zerosearch_rl.cli import main
from zerosearch_rl.config import ConfigError, HealthConfig
from zerosearch_rl.health import NONFINITE, HealthEvent, HealthStop, HealthWatch, summary

OFF = {"reward_drop": None, "max_kl": None, "min_entropy": None, "max_entropy": None, "max_truncated": None,
       "max_invalid": None}


def watch(**fields):
    return HealthWatch(HealthConfig(**{**OFF, **fields}))


def fired(w, rows, start=0):
    return [(e.step, e.watch, e.action, e.since) for step, row in enumerate(rows, start) for e in w.observe(step, row)]


def series(key, values):
    return [{key: v} for v in values]


R, KL, ENT, TRUNC = "reward/mean", "actor/kl", "actor/entropy", "rollout/truncated_response"


@pytest.mark.parametrize(("fields", "rows", "expected"), [
    # window 3: averages .5 .5 .367 .233 .1 .1 .1 from step 2; best .5, bound .3: below at 5, 6, 7 -> fires at 7;
    # the stretch began with the window of step 5 (steps 3-5)
    ({"window": 3, "reward_drop": 0.2}, series(R, [.5, .5, .5, .5, .1, .1, .1, .1, .1]),
     [(7, "reward_drop", "warn", 3)]),
    # below at 4 and 5 only (.233, .233), back at 6 (.367): never 3 in a row
    ({"window": 3, "reward_drop": 0.2}, series(R, [.5, .5, .5, .1, .1, .5, .5, .5]), []),
    # window 2, bound .7: below at 2, 3 -> fires at 3 (since 1); clears at 5; below at 6, 7 -> fires again at 7
    ({"window": 2, "reward_drop": 0.3, "action": "rollback"}, series(R, [1, 1, 0, 0, 1, 1, 0, 0]),
     [(3, "reward_drop", "rollback", 1), (7, "reward_drop", "rollback", 5)]),
    # a reward that only grows never fires, however far its early values lie below the best
    ({"window": 2, "reward_drop": 0.1}, series(R, [0, .2, .4, .6, .8, 1]), []),
    # averages .1 1.05 2 1.05 .1 1.55 3: past 1 from step 2 (since 1), clear at 5, past again at 6 (since 5)
    ({"window": 2, "max_kl": 1.0}, series(KL, [.1, .1, 2, 2, .1, .1, 3, 3]),
     [(2, "max_kl", "warn", 1), (6, "max_kl", "warn", 5)]),
    # averages .5 .2505 .001: below .01 at step 3
    ({"window": 2, "min_entropy": 0.01, "action": "stop"}, series(ENT, [.5, .5, .001, .001]),
     [(3, "min_entropy", "stop", 2)]),
    ({"window": 1, "max_entropy": 4.0}, series(ENT, [1, 5, 1]), [(1, "max_entropy", "warn", 1)]),
    # averages .5 (not above .5) then 1
    ({"window": 2, "max_truncated": 0.5}, series(TRUNC, [0, 1, 1]), [(2, "max_truncated", "warn", 1)]),
    # the invalid share is 1 - format_valid: .95 averaged from the first full window
    ({"window": 2, "max_invalid": 0.9}, series("reward/format_valid", [.05, .05, .5]),
     [(1, "max_invalid", "warn", 0)]),
    # the watches that are off read nothing
    ({"window": 1}, [{R: 1, KL: 9, ENT: 0, TRUNC: 1, "reward/format_valid": 0}, {R: 0, KL: 9, ENT: 0}], []),
])
def test_collapse_watches_fire_at_the_step_computed_by_hand(fields, rows, expected):
    assert fired(watch(**fields), rows) == expected


def test_non_finite_steps_are_skipped_and_the_max_bad_steps_th_in_a_row_stops():
    bad = {R: 0.5, f"{NONFINITE}advantages": 1.0}
    rows = [{R: 0.5}, bad, bad, {R: 0.5}, bad, bad, bad]
    assert fired(watch(max_bad_steps=3), rows) == [
        (1, "nonfinite", "skip", 1), (2, "nonfinite", "skip", 1),
        (4, "nonfinite", "skip", 4), (5, "nonfinite", "skip", 4), (6, "nonfinite", "stop", 4)]
    (event,) = watch(max_bad_steps=1).observe(3, {f"{NONFINITE}loss": 1.0, f"{NONFINITE}grad_norm": 1.0})
    assert "non-finite grad_norm, loss" in event.message and "health.max_bad_steps=1" in event.message


def test_a_non_finite_value_does_not_enter_a_moving_average():
    w = watch(window=2, reward_drop=0.3)
    assert fired(w, series(R, [1, 1, float("nan"), 0, float("inf"), 0])) == [(5, "reward_drop", "warn", 1)]
    assert [s for s, _ in w.s.windows[R]] == [3, 5]


def test_the_state_carries_the_watch_over_a_resume():
    rows = series(R, [1, 1, 1, 0, 0, 0, 0])
    whole = fired(watch(window=2, reward_drop=0.3), rows)
    first = watch(window=2, reward_drop=0.3)
    fired(first, rows[:4])
    second = watch(window=2, reward_drop=0.3)
    second.load_state(first.state())
    assert whole == fired(second, rows[4:], start=4) == [(4, "reward_drop", "warn", 2)]


def test_summary_lists_every_event():
    w = watch(window=1, max_kl=1.0)
    events = w.observe(7, {KL: 2.0})
    assert summary([]) == ["health: no watch fired"]
    assert summary(events) == ["health: 1 event", "  step 7: max_kl -> warn: actor/kl averaged 2 over the last 1 "
                                                   "steps, above health.max_kl=1.0"]


def test_entropy_bounds_must_leave_room():
    with pytest.raises(ConfigError, match=r"health\.min_entropy"):
        HealthConfig(min_entropy=1.0, max_entropy=0.5)


def test_events_go_into_the_metrics_line_and_onto_every_panel_of_the_curves(tmp_path):
    pytest.importorskip("matplotlib")
    from zerosearch_rl.tracking import EVENT_COLOR, MetricsLogger, event_steps, metrics_figure, read_metrics

    w, logger = watch(window=1, max_kl=1.0), MetricsLogger(tmp_path)
    for step, kl in enumerate([0.5, 2.0, 2.0, 0.5, 3.0]):  # fires at 1 and 4
        metrics = {R: 0.5, KL: kl, "noise/probability": 0.1}
        logger.log(step, metrics, [e.record() for e in w.observe(step, metrics)])
    logger.close()
    rows = read_metrics(tmp_path)
    assert rows[1]["health/events"][0]["watch"] == "max_kl" and "health/events" not in rows[0]
    assert event_steps(rows) == [1, 4]
    fig = metrics_figure(rows, [R, KL])
    for ax in fig.axes[:2]:  # the two panels (the reward panel's noise twin comes after them)
        markers = [line.get_xdata()[0] for line in ax.lines if line.get_color() == EVENT_COLOR]
        assert markers == [1, 4]


@pytest.mark.parametrize("stops", [False, True])
def test_zerosearch_train_ends_with_the_health_lines(monkeypatch, capsys, stops):
    import zerosearch_rl.preflight
    import zerosearch_rl.trainer

    class Trainer:
        rank, run_dir, cost = 0, "runs/x", None

        def __init__(self, cfg, resume=False, overwrite=False):
            self.health_events = []

        def train(self):
            self.health_events.append(HealthEvent(4, "max_kl", "stop" if stops else "warn", "actor/kl averaged 2", 3))
            if stops:
                raise HealthStop("training stopped at step 4 by the health watch: actor/kl averaged 2")
            return [{"reward/mean": 0.5, "reward/exact_match": 0.25}]

        def close(self):
            pass

    monkeypatch.setattr(zerosearch_rl.trainer, "Trainer", Trainer)
    monkeypatch.setattr(zerosearch_rl.preflight, "preflight", lambda *a, **k: [])  # the default config has no model
    assert main(["train"]) == (2 if stops else 0)
    out, err = capsys.readouterr()
    assert f"health: 1 event\n  step 4: max_kl -> {'stop' if stops else 'warn'}: actor/kl averaged 2\n" in out
    assert ("done: 1 steps" in out) is not stops
    assert err == ("zerosearch: error: training stopped at step 4 by the health watch: actor/kl averaged 2\n"
                   if stops else "")
