"""The trainer's health watch: what one step's metrics say about the run, as events. Light module: no torch.

``HealthWatch.observe`` reads a step's metrics and returns the events that fire at that step:

- ``nonfinite``: the trainer found a non-finite tensor (it logs ``health/nonfinite/<tensor>`` and skipped the
  update); action ``skip``, or ``stop`` at the ``health.max_bad_steps``-th such step in a row.
- the collapse watches, each named after the ``health`` field that bounds it: ``reward_drop`` (the reward's
  moving average stays that far below its best for ``window`` steps in a row), ``max_kl``, ``min_entropy``,
  ``max_entropy``, ``max_truncated``, ``max_invalid`` (a moving average past the bound); action ``health.action``.

A collapse watch fires when its condition starts and again only after it has cleared, so a run that stays
collapsed gets one event, not one per step. What the trainer does with the events (skip, warn, stop, roll
back) is in ``trainer.Trainer``; docs/training-health.md says what each one means and what to change.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zerosearch_rl.config import HealthConfig

NONFINITE = "health/nonfinite/"  # + the tensor's name: 1.0 in the metrics of a step whose update was skipped
SKIPPED = "health/skipped_update"
EVENTS = "health/events"  # the events of a step, a list in its metrics.jsonl line
REWARD = "reward/mean"
INVALID = "1 - reward/format_valid"
# The bound watches: the health field holding the bound and the metric it bounds; max_* fire above, min_* below.
BOUNDS = (("max_kl", "actor/kl"), ("min_entropy", "actor/entropy"), ("max_entropy", "actor/entropy"),
          ("max_truncated", "rollout/truncated_response"), ("max_invalid", INVALID))


class HealthStop(RuntimeError):
    """The health watch stopped the run; the message says why and which checkpoint to resume from."""


@dataclass(frozen=True)
class HealthEvent:
    """One firing. ``since``: the first step whose metrics went into it (a rollback goes back before it)."""

    step: int
    watch: str
    action: str
    message: str
    since: int

    def record(self) -> dict[str, Any]:
        """The event as it goes into its step's line of metrics.jsonl."""
        return {"watch": self.watch, "action": self.action, "message": self.message, "since": self.since}

    def line(self) -> str:
        return f"step {self.step}: {self.watch} -> {self.action}: {self.message}"


@dataclass
class _State:
    """Everything the watch remembers; saved in checkpoints, so a resumed or rolled-back run watches on."""

    windows: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # metric -> last (step, value)s
    best: float | None = None  # the reward's best moving average
    below: int = 0  # steps in a row the reward's average has been below best - reward_drop
    below_since: int = 0  # the first step of the window that began that stretch
    firing: list[str] = field(default_factory=list)  # bound watches whose condition holds now
    bad_steps: int = 0  # non-finite steps in a row


class HealthWatch:
    """Fed every step's metrics in order (``observe``); returns the events of that step."""

    def __init__(self, cfg: HealthConfig) -> None:
        self.cfg = cfg
        self.bounds = [(name, key) for name, key in BOUNDS if getattr(cfg, name) is not None]
        self.keys = {key for _, key in self.bounds} | ({REWARD} if cfg.reward_drop is not None else set())
        self.s = _State()

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self.s)

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.s = _State(**copy.deepcopy(dict(state)))

    def observe(self, step: int, metrics: Mapping[str, float]) -> list[HealthEvent]:
        events = self._nonfinite(step, metrics)
        values = dict(metrics)
        if "reward/format_valid" in metrics:
            values[INVALID] = 1.0 - metrics["reward/format_valid"]
        updated = set()
        for key in self.keys:
            value = values.get(key)
            if value is not None and math.isfinite(value):
                window = self.s.windows.setdefault(key, [])
                window.append((step, float(value)))
                del window[: -self.cfg.window]
                updated.add(key)
        if REWARD in updated:
            events += self._reward(step)
        for name, key in self.bounds:
            if key in updated:
                events += self._bound(step, name, key)
        return events

    def _average(self, key: str) -> float | None:
        window = self.s.windows[key]
        return sum(v for _, v in window) / len(window) if len(window) == self.cfg.window else None

    def _nonfinite(self, step: int, metrics: Mapping[str, float]) -> list[HealthEvent]:
        bad = sorted(k.removeprefix(NONFINITE) for k in metrics if k.startswith(NONFINITE))
        if not bad:
            self.s.bad_steps = 0
            return []
        self.s.bad_steps += 1
        n, limit = self.s.bad_steps, self.cfg.max_bad_steps
        message = (f"non-finite {', '.join(bad)}: update skipped ({n} such step{'s' if n > 1 else ''} in a row, "
                   f"health.max_bad_steps={limit})")
        return [HealthEvent(step, "nonfinite", "stop" if n >= limit else "skip", message, step - n + 1)]

    def _reward(self, step: int) -> list[HealthEvent]:
        average, k, drop = self._average(REWARD), self.cfg.window, self.cfg.reward_drop
        if average is None or drop is None:
            return []
        s = self.s
        s.best = average if s.best is None else max(s.best, average)
        if average >= s.best - drop:
            s.below = 0
            return []
        if s.below == 0:
            s.below_since = s.windows[REWARD][0][0]
        s.below += 1
        if s.below != k:
            return []
        message = (f"{REWARD} averaged {average:.4g} over the last {k} steps, more than health.reward_drop={drop} "
                   f"below its best average {s.best:.4g}, for {k} steps in a row")
        return [HealthEvent(step, "reward_drop", self.cfg.action, message, s.below_since)]

    def _bound(self, step: int, name: str, key: str) -> list[HealthEvent]:
        average, limit = self._average(key), getattr(self.cfg, name)
        if average is None:
            return []
        upper = name.startswith("max_")
        past = average > limit if upper else average < limit
        if not past:
            if name in self.s.firing:
                self.s.firing.remove(name)
            return []
        if name in self.s.firing:
            return []
        self.s.firing.append(name)
        message = (f"{key} averaged {average:.4g} over the last {self.cfg.window} steps, "
                   f"{'above' if upper else 'below'} health.{name}={limit}")
        return [HealthEvent(step, name, self.cfg.action, message, self.s.windows[key][0][0])]


def summary(events: Sequence[HealthEvent]) -> list[str]:
    """The health lines of a run's summary: one per event, or one saying that nothing fired."""
    if not events:
        return ["health: no watch fired"]
    return [f"health: {len(events)} event{'s' if len(events) > 1 else ''}", *(f"  {e.line()}" for e in events)]
