"""A run's searches per engine and what they would have cost (cost.py), and the summary.json a run writes."""

from __future__ import annotations

import json

import pytest

from fakes.primed import primed_policy_dir
from zerosearch_rl.cli import main
from zerosearch_rl.config import TrackingConfig, load_config
from zerosearch_rl.cost import EngineUse, RunCost, engine_uses, run_cost, significant
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search.fake import FakeBackend
from zerosearch_rl.search.wrappers import CachedBackend, FailSoftBackend, MixtureBackend


def requests(*queries: str) -> list[SearchRequest]:
    return [SearchRequest(query=q, question=q, answers=("x",), sample_id=f"s{i}") for i, q in enumerate(queries)]


class Named(FakeBackend):
    def __init__(self, name: str) -> None:
        super().__init__(topk=1)
        self.name = name


SIM = EngineUse("train", "simulate_sft", 0, simulator=True)


@pytest.mark.parametrize(("searches", "per_1k", "busy_s", "per_hour", "api", "compute"), [
    (64_000, 9.17, 0.0, 1.5, 586.88, 0.0),  # the paper's run: 64,000 searches through SerpAPI
    (1_000, 9.17, 3600.0, 1.5, 9.17, 1.5),
    (96, 10.0, 36.0, 2.0, 0.96, 0.02),
    (0, 9.17, 0.0, 1.5, 0.0, 0.0),
    (2_322, 0.0, 7200.0, 0.0, 0.0, 0.0),  # prices of 0: a free engine, a machine already paid for
])
def test_the_cost_arithmetic(searches, per_1k, busy_s, per_hour, api, compute):
    cost = RunCost(searches, (EngineUse("train", "simulate_sft", searches, True, busy_s, 10, 20),), per_1k, per_hour)
    assert cost.api_usd == pytest.approx(api)
    assert cost.compute_usd == pytest.approx(compute)
    assert cost.simulator_hours == pytest.approx(busy_s / 3600)
    assert cost.simulator_tokens == 30


def test_the_default_api_price_is_the_papers_serpapi_bill():
    """tracking.api_price_per_1k documents its source: ~64,000 searches cost ~$586.70 through SerpAPI."""
    paper = RunCost(64_000, (), TrackingConfig().api_price_per_1k, TrackingConfig().compute_price_per_hour)
    assert paper.api_usd == pytest.approx(586.70, abs=0.5)


@pytest.mark.parametrize(("x", "text"), [(0.0, "0.00"), (0.0033, "0.0033"), (0.005, "0.0050"), (0.05, "0.050"),
                                         (0.88, "0.88"), (1.5, "1.50"), (586.88, "586.88"), (1234.5, "1,234.50")])
def test_small_figures_keep_two_significant_digits(x, text):
    assert significant(x) == text


def test_the_line_names_each_engine_and_both_prices():
    engines = (EngineUse("train", "bm25", 40), EngineUse("train", "simulate_sft", 56, True, 72.0, 3000, 1500),
               EngineUse("eval", "bm25", 12))
    line = RunCost(108, engines, 9.17, 1.5).line()
    assert line == ("cost: 108 searches (bm25 40, simulate_sft 56, eval bm25 12); through a paid search API at "
                    "$9.17 per 1,000: $0.99; the simulator: 72 s busy, 4,500 tokens, 0.020 h at $1.50/h: $0.030")
    assert RunCost(5, (EngineUse("train", "bm25", 5),), 9.17, 1.5).line().endswith("$0.046; no simulator")


def test_json_round_trip():
    cost = RunCost(7, (EngineUse("train", "fake", 7), SIM), 9.17, 1.5, wall_s=3.5)
    row = json.loads(json.dumps(cost.to_json()))
    assert RunCost.from_json(row) == cost
    assert row["line"] == cost.line() and row["usd"]["api"] == pytest.approx(cost.api_usd)


def test_engines_are_counted_behind_the_cache_the_fail_soft_wrapper_and_the_mixture():
    real, sim = Named("bm25"), Named("simulate_sft")
    backend = CachedBackend(FailSoftBackend(MixtureBackend(real, sim, real_share=0.5, seed=0)))
    backend.search(requests("a", "b", "c", "d", "e", "f"))
    backend.search(requests("a", "b", "g"))  # a and b come from the cache
    uses = engine_uses(backend)
    assert [(u.name, u.searches) for u in uses] == [("bm25", real.counts["queries"]), ("simulate_sft",
                                                                                       sim.counts["queries"])]
    assert sum(u.searches for u in uses) == 7  # the cache served 2 of the 9
    cost = run_cost([("train", backend)], TrackingConfig())
    assert cost.searches == 9  # every search the policy made is one call of a paid API


def test_figures_are_summed_over_processes():
    backend = Named("fake")
    backend.search(requests("a", "b", "c"))
    two = run_cost([("train", backend), ("eval", Named("bm25"))], TrackingConfig(),
                   reduce=lambda xs: [2 * x for x in xs])  # as if a second process had made the same searches
    assert two.searches == 6 and [(u.role, u.name, u.searches) for u in two.engines] == [("train", "fake", 6),
                                                                                          ("eval", "bm25", 0)]


# ---------------------------------------------------------------- a run's summary.json


@pytest.fixture(scope="module")
def searcher(tmp_path_factory):
    return primed_policy_dir(str(tmp_path_factory.mktemp("searcher")), reply="search")


def run_smoke(policy, tmp_path, capsys, *overrides: str) -> tuple[dict, list[dict], str]:
    """``zerosearch train`` of the smoke preset with ``policy``; returns summary.json, the metrics rows and what
    the command printed."""
    args = ["train", "--config", "configs/smoke.yaml", f"model.policy={policy}",
            f"trainer.output_dir={tmp_path / 'run'}", "trainer.save_every=0", "tracking.api_price_per_1k=10",
            "tracking.compute_price_per_hour=2", *overrides]
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return json.loads((tmp_path / "run" / "summary.json").read_text()), rows, printed


@pytest.mark.slow
def test_a_run_writes_its_searches_and_their_cost(searcher, tmp_path, capsys):
    summary, rows, printed = run_smoke(searcher, tmp_path, capsys)
    cfg = load_config("configs/smoke.yaml")
    issued = round(sum(r["rollout/searches"] for r in rows) * cfg.trainer.batch_size * cfg.rollout.n_samples)
    assert issued > 0
    assert summary["searches"] == issued == rows[-1]["search/queries"]  # the trajectories' count, the engine's
    assert [(e["name"], e["searches"], e["simulator"]) for e in summary["engines"]] == [("fake", issued, False)]
    assert summary["usd"] == {"api": pytest.approx(issued * 10 / 1000), "simulator": 0.0}
    assert summary["steps"] == len(rows) == 2 and summary["wall_s"] > 0
    assert summary["line"] in printed.splitlines()  # the end of `zerosearch train` prints it


@pytest.mark.slow
def test_a_simulated_run_writes_the_simulators_time_and_tokens(searcher, tmp_path, capsys):
    summary, rows, printed = run_smoke(searcher, tmp_path, capsys, "search.backend=simulate_sft",
                                       "simulator.client=transformers", f"simulator.model={searcher}",
                                       "simulator.max_new_tokens=8")
    (engine,) = summary["engines"]
    assert (engine["name"], engine["simulator"]) == ("simulate_sft", True)
    assert engine["searches"] == summary["searches"] == rows[-1]["search/queries"] > 0
    tokens = rows[-1]["search/prompt_tokens"] + rows[-1]["search/completion_tokens"]
    assert summary["simulator"]["tokens"] == tokens > 0
    assert 0 < summary["simulator"]["busy_s"] <= summary["wall_s"]
    assert summary["usd"]["simulator"] == pytest.approx(summary["simulator"]["busy_s"] / 3600 * 2)
    assert "the simulator:" in summary["line"] and summary["line"] in printed.splitlines()
