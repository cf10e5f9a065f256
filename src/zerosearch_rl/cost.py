"""What a training run's searches cost: counted per engine, priced as a paid search API would have billed them,
beside the simulator's busy hours at an hourly price (``tracking.api_price_per_1k``,
``tracking.compute_price_per_hour``).

ZeroSearch's case is this comparison: its paper puts about 64,000 searches of one run at about $586.70
through SerpAPI, against about $70.80 of A100 time for its 14B simulator. A run here counts the searches its
policy made (training and in-training evaluation; each would have been one paid call), the searches each
engine behind the cache served, and, for a simulated engine, its busy wall time (inside ``search``) and
tokens. The simulator's cost is its busy time at the hourly price: the hours of the machine it holds while
it writes pages. A simulator on a server of its own (``search.backend=remote``, an OpenAI-compatible
``simulator.base_urls``) holds its GPUs for the whole run instead: price ``wall_s`` then.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zerosearch_rl.config import TrackingConfig
from zerosearch_rl.search.base import SearchBackend

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class EngineUse:
    """One engine of a run, behind any cache or mixture: what it served."""

    role: str  # "train", or "eval" for trainer.eval_search's engine
    name: str  # the engine's name (bm25, simulate_sft, remote, ...)
    searches: int
    simulator: bool = False
    busy_s: float = 0.0  # wall time inside the simulator's search calls
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class RunCost:
    """A run's searches and what they would have cost."""

    searches: int  # every search the policy made: each one call of a paid API
    engines: tuple[EngineUse, ...]
    api_price_per_1k: float
    compute_price_per_hour: float
    wall_s: float = 0.0  # the whole run

    @property
    def api_usd(self) -> float:
        return self.searches * self.api_price_per_1k / 1000

    @property
    def simulator_s(self) -> float:
        return sum(e.busy_s for e in self.engines if e.simulator)

    @property
    def simulator_hours(self) -> float:
        return self.simulator_s / 3600

    @property
    def simulator_tokens(self) -> int:
        return sum(e.prompt_tokens + e.completion_tokens for e in self.engines if e.simulator)

    @property
    def compute_usd(self) -> float:
        return self.simulator_hours * self.compute_price_per_hour

    def line(self) -> str:
        """One line: the searches per engine, their price through an API, the simulator's time, tokens and price."""
        engines = ", ".join(f"{'' if e.role == 'train' else e.role + ' '}{e.name} {e.searches:,}" for e in self.engines)
        text = (f"cost: {self.searches:,} searches ({engines}); through a paid search API at "
                f"{usd(self.api_price_per_1k)} per 1,000: {usd(self.api_usd)}")
        if not any(e.simulator for e in self.engines):
            return text + "; no simulator"
        return (f"{text}; the simulator: {self.simulator_s:,.0f} s busy, {self.simulator_tokens:,} tokens, "
                f"{significant(self.simulator_hours)} h at {usd(self.compute_price_per_hour)}/h: "
                f"{usd(self.compute_usd)}")

    def to_json(self) -> dict[str, Any]:
        return {"searches": self.searches, "engines": [asdict(e) for e in self.engines], "wall_s": self.wall_s,
                "simulator": {"busy_s": self.simulator_s, "hours": self.simulator_hours,
                              "tokens": self.simulator_tokens},
                "price": {"api_per_1k": self.api_price_per_1k, "compute_per_hour": self.compute_price_per_hour},
                "usd": {"api": self.api_usd, "simulator": self.compute_usd}, "line": self.line()}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RunCost:
        return cls(row["searches"], tuple(EngineUse(**e) for e in row["engines"]), row["price"]["api_per_1k"],
                   row["price"]["compute_per_hour"], row["wall_s"])


def significant(x: float, digits: int = 2) -> str:
    """``x`` with two significant digits below 1 (0.0033), two decimals from 1 on (1,234.50)."""
    if x == 0 or abs(x) >= 1:
        return f"{x:,.2f}"
    return f"{x:.{max(2, digits - 1 - math.floor(math.log10(abs(x))))}f}"


def usd(x: float) -> str:
    return f"${significant(x)}"


def leaf_engines(backend: SearchBackend) -> list[SearchBackend]:
    """The engines that answer searches behind ``backend``'s cache, fail-soft or mixture wrappers."""
    from zerosearch_rl.search.wrappers import CachedBackend, FailSoftBackend, MixtureBackend

    if isinstance(backend, (CachedBackend, FailSoftBackend)):
        return leaf_engines(backend.inner)
    if isinstance(backend, MixtureBackend):
        return [*leaf_engines(backend.real), *leaf_engines(backend.simulated)]
    return [backend]


def engine_uses(backend: SearchBackend, role: str = "train") -> list[EngineUse]:
    """What each engine behind ``backend`` served (its own counters, ``SearchBackend.metrics``)."""
    from zerosearch_rl.search.simulated import SimulatedBackend

    uses = []
    for leaf in leaf_engines(backend):
        m = leaf.metrics()
        uses.append(EngineUse(role, leaf.name, int(m.get("search/queries", 0)), isinstance(leaf, SimulatedBackend),
                              float(m.get("search/busy_s", 0.0)), int(m.get("search/prompt_tokens", 0)),
                              int(m.get("search/completion_tokens", 0))))
    return uses


Reduce = Callable[[list[float]], list[float]]


def run_cost(backends: Sequence[tuple[str, SearchBackend]], tracking: TrackingConfig, wall_s: float = 0.0,
             reduce: Reduce | None = None) -> RunCost:
    """The cost of the searches ``backends`` ((role, backend) pairs, each counted once) made. ``reduce`` sums
    each figure over the data-parallel processes (every process calls it, in the same order)."""
    searches = [float(b.metrics().get("search/queries", 0)) for _, b in backends]  # the outermost count wins
    uses = [u for role, b in backends for u in engine_uses(b, role)]
    if reduce is not None:
        flat = reduce([*searches, *(x for u in uses for x in (u.searches, u.busy_s, u.prompt_tokens,
                                                                u.completion_tokens))])
        searches, rest = flat[: len(searches)], flat[len(searches):]
        uses = [EngineUse(u.role, u.name, int(rest[4 * i]), u.simulator, rest[4 * i + 1], int(rest[4 * i + 2]),
                          int(rest[4 * i + 3])) for i, u in enumerate(uses)]
    return RunCost(int(sum(searches)), tuple(uses), tracking.api_price_per_1k, tracking.compute_price_per_hour,
                   wall_s)


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    """``summary.json`` in the run folder."""
    path = Path(run_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return path


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
