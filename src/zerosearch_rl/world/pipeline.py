"""The whole ZeroSearch pipeline on the tiny world: tune a simulator, train with RL, evaluate for real.

Stages, each skipped when its output is already on disk (a second run reuses them):

1. **models**: the world, its tokenizer, the base policy and the simulator LM (shipped in
   ``assets/world`` for the demo size; built by ``world.models.build_models`` for other sizes);
2. **simulator SFT**: searches of the scripted collector against BM25 over the era-B corpus, labelled
   by ``answer_in_docs`` with swapped noisy pages, fine-tuning, then ``sim score`` for the tuned and
   the untuned simulator on held-out queries;
3. **RL**: GRPO of the base policy three times, the same settings except the engine: the real BM25
   engine, the untuned simulator and the tuned one (both through the ``simulate_sft`` prompt, with the
   exponential noise curriculum);
4. **evaluation** with the real engine on the test questions: the base policy answering directly,
   with one search of the question (RAG), as an agent (greedy) and forced to search first; each RL
   policy as an agent. "Forced to search first" gives the policy's first turn the opening of a
   search turn of its own traces (``traces.FORCED_SEARCH_PREFIX``) and lets it write the query: the
   base policy at its best, searching as it was taught (searching the question text for it, the
   generic ``agent_forced``, puts the documents where its traces never had them). Exact match per
   source, as a Markdown table and a PNG chart, and the runs' reward curves with the noise schedule.

Each stage is one progress display and one summary line on the terminal (``console.stage``); what the libraries
print meanwhile goes to ``logs/<stage>.log`` under the output folder. Each RL run's line states its searches
and what they would have cost through a paid API, beside the simulator's time (``cost.py``, the run's
``summary.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zerosearch_rl.config import Config, load_config
from zerosearch_rl.console import stage
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.world.build import WorldFiles
from zerosearch_rl.world.traces import FORCED_SEARCH_PREFIX

#: The presets ship inside the package (a wheel has no ``configs/``); ``configs/world_*.yaml`` link to them.
PRESETS = Path(__file__).resolve().parents[1] / "presets" / "world"
RL_PRESET = PRESETS / "grpo_bm25.yaml"
SIM_PRESET = PRESETS / "sim_sft.yaml"
SHIPPED = asset("world")

#: RL runs: name -> engine overrides ("{tuned}"/"{untuned}" become the simulators' folders).
RL_RUNS: dict[str, tuple[str, ...]] = {
    "real engine (bm25)": ("search.backend=bm25",),
    "simulator, no SFT": ("search.backend=simulate_sft", "simulator.model={untuned}"),
    "simulator, tuned": ("search.backend=simulate_sft", "simulator.model={tuned}"),
}
BASE_METHODS = {"direct": "direct answer (no search)", "rag": "RAG (search the question once)",
                "agent": "before RL (greedy)", "agent_prefixed": "before RL, forced to search first"}


@dataclass(frozen=True)
class Plan:
    """How big each stage is (the demo preset, or a micro one for tests)."""

    size: str
    rl: tuple[str, ...] = ()  # overrides of the RL preset, for every run
    sim: tuple[str, ...] = ()  # overrides of the simulator-SFT preset
    eval_per_source: int | None = None  # test questions per source (None = all)


PLANS = {
    "demo": Plan("demo"),
    "micro": Plan("micro", rl=("trainer.total_steps=2", "trainer.batch_size=2", "rollout.n_samples=2",
                               "trainer.micro_batch_size=4", "trainer.eval_every=0", "curriculum.steps=2",
                               "rollout.max_new_tokens=12", "simulator.max_new_tokens=40"),
                  sim=("sim.epochs=0.25", "sim.train_batch_size=8", "sim.score_limit=4",
                       "sim.score_max_new_tokens=40"),
                  eval_per_source=2),
}


@dataclass(frozen=True)
class PipelineResult:
    table: str  # Markdown: exact match per source, one row per method or run
    rows: list[tuple[str, dict[str, float]]]
    scores: dict[str, Any]  # sim score of the untuned and the tuned simulator
    out: Path
    costs: dict[str, str]  # RL run -> its cost line (summary.json's), "" for a run trained without one


def _shipped(plan: Plan, seed: int) -> bool:
    """Whether the package's models serve (the demo size, seed 0) or they are built."""
    return plan.size == "demo" and seed == 0


def _models(root: Path, plan: Plan, seed: int) -> Path:
    """The folder holding ``world/``, ``policy/`` and ``simulator/``."""
    if _shipped(plan, seed):
        return SHIPPED
    target = root / "models"
    if not (target / "simulator" / "config.json").is_file():
        from zerosearch_rl.world.models import build_models

        build_models(target, plan.size, seed)
    return target


def _rl_config(models: Path, root: Path, plan: Plan, name: str, extra: Sequence[str]) -> Config:
    world = WorldFiles(models / "world")
    return load_config(RL_PRESET, [
        f"model.policy={models / 'policy'}", f"data.train_files=[{world.qa('train')}]",
        f"data.eval_files=[{world.qa('test')}]", f"search.corpus={world.corpus}", f"search.index_dir={root / 'index'}",
        f"trainer.output_dir={root / 'rl' / _slug(name)}", *plan.rl, *extra])


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def tune_simulator(models: Path, root: Path, plan: Plan) -> tuple[Path, dict[str, Any]]:
    """Collect, label, fine-tune and score; returns the tuned simulator and both simulators' scores."""
    from zerosearch_rl.simulator_sft.stage import tune_and_score

    world, sim_dir = WorldFiles(models / "world"), root / "sim"
    cfg = load_config(SIM_PRESET, [
        f"data.train_files=[{world.qa('train')}]", f"search.corpus={world.corpus}",
        f"search.index_dir={root / 'index'}", f"sim.base_model={models / 'simulator'}",
        *(f"sim.{k}={sim_dir / v}" for k, v in (("records_path", "searches.jsonl"), ("labelled_path", "labelled.jsonl"),
                                                 ("sft_path", "sft.jsonl"), ("heldout_path", "heldout.jsonl"),
                                                 ("output_dir", "model"), ("score_dir", "score"))), *plan.sim])
    return tune_and_score(cfg, models / "simulator", ["search.backend=bm25", f"search.corpus={world.corpus}",
                                                      f"search.index_dir={root / 'index'}", "search.topk=3"])


def train_policy(models: Path, root: Path, plan: Plan, tuned: Path, name: str) -> Path:
    """GRPO with the engine of ``RL_RUNS[name]`` (``rl_stage.train_run``: reused when done); returns the final
    policy's folder."""
    from zerosearch_rl.rl_stage import train_run

    overrides = [e.format(tuned=tuned, untuned=models / "simulator") for e in RL_RUNS[name]]
    return train_run(_rl_config(models, root, plan, name, overrides), root / "eval" / _slug(name))


def evaluate_all(models: Path, root: Path, plan: Plan, finals: dict[str, Path]) -> list[tuple[str, dict[str, float]]]:
    """Exact match per source (and their average) with the real engine, one row per method or run."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zerosearch_rl.data import load_examples
    from zerosearch_rl.evaluate import evaluate
    from zerosearch_rl.evaluate.report import with_average
    from zerosearch_rl.search import build_backend

    cfg = _rl_config(models, root, plan, "eval", ["search.backend=bm25"])
    cfg = replace(cfg, eval=replace(cfg.eval, first_turn_prefix=FORCED_SEARCH_PREFIX))
    tests = _per_source(load_examples([WorldFiles(models / "world").qa("test")]), plan.eval_per_source)
    engine = build_backend(cfg)
    rows = []
    for name, folder, methods in [("base", models / "policy", list(BASE_METHODS)),
                                  *((n, f, ["agent"]) for n, f in finals.items())]:
        policy, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
        report = evaluate(policy, tokenizer, engine, tests, methods, cfg, root / "eval" / _slug(name))
        for method in methods:
            label = BASE_METHODS[method] if name == "base" else f"after RL with the {name}"
            rows.append((label, with_average(report.results[method], "exact_match")))
    return rows


def _per_source(examples: list[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` examples of each source, in file order."""
    if limit is None:
        return examples
    seen: dict[str, int] = {}
    kept = []
    for ex in examples:
        seen[ex.source] = seen.get(ex.source, 0) + 1
        if seen[ex.source] <= limit:
            kept.append(ex)
    return kept


def run_pipeline(out: str | Path, size: str = "demo", seed: int = 0, verbose: bool = False) -> PipelineResult:
    """All stages (cached on disk under ``out``); writes ``table.md``, ``cost.txt``, ``em.png`` and ``curves/``,
    and each stage's library output to ``logs/`` (``verbose``: to the terminal as well)."""
    from zerosearch_rl.evaluate.report import chart, markdown_table
    from zerosearch_rl.rl_stage import run_lines, write_cost_lines
    from zerosearch_rl.tracking import plot_metrics, read_metrics

    plan, root = PLANS[size], Path(out)
    logs = root / "logs"
    if _shipped(plan, seed):
        models = SHIPPED
    else:
        with stage("models", logs / "models.log", verbose) as s:
            models = _models(root, plan, seed)
            s.summary = f"the world, the base policy and the simulator LM in {models}"
    with stage("simulator SFT", logs / "simulator_sft.log", verbose) as s:
        tuned, scores = tune_simulator(models, root, plan)
        ratios = ", ".join(f"{label} {score['containment_ratio']}" for label, score in scores.items())
        s.summary = f"useful/noisy answer containment ratio {ratios}"
    finals, costs = {}, {}
    for name in RL_RUNS:
        with stage(f"RL with the {name}", logs / f"rl_{_slug(name)}.log", verbose) as s:
            finals[name] = train_policy(models, root, plan, tuned, name)
            s.summary, costs[name] = run_lines(finals[name].parent)
    with stage("evaluation", logs / "evaluation.log", verbose) as s:
        rows = evaluate_all(models, root, plan, finals)
        s.summary = f"{len(rows)} rows, exact match with the real engine"
    table = markdown_table(rows, "exact_match")
    (root / "table.md").write_text(table + "\n", encoding="utf-8")
    write_cost_lines(root, costs)
    chart(rows, "exact_match", root / "em.png", "Tiny world: exact match with the real engine")
    (root / "curves").mkdir(exist_ok=True)
    for name, final in finals.items():
        plot_metrics(read_metrics(final.parent / "metrics.jsonl"), root / "curves" / f"{_slug(name)}.png",
                     title=f"GRPO with the {name}")
    return PipelineResult(table, rows, scores, root, costs)
