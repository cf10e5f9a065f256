"""The real-LM recipe: SmolLM2-135M-Instruct learns to search the offline Wikipedia leads on a CPU.

Stages, each skipped when its output is already on disk (a rerun resumes after the last finished stage):

1. **data** (``wiki_recipe.data``): FanOutQA questions the leads can answer, split by top-level question,
   the lead passages and BM25 recall of the question's own search;
2. **simulator SFT** (``simulator_sft.stage``): the scripted collector's searches against BM25, labelled by
   answer containment with swapped noisy pages, SmolLM2 tuned on the ``simulate_sft`` prompt, then scored
   beside the untuned SmolLM2 on held-out searches;
3. **cold start** (``wiki_recipe.cold_start``): a short SFT of the base policy on the answer format, from
   training questions and real-engine pages only;
4. **RL**: GRPO from the cold-start policy three times, the same settings except the engine: BM25, the
   untuned SmolLM2 prompted (``simulate_prompt``) and the tuned simulator (``simulate_sft``), with the
   exponential noise curriculum for the two simulators;
5. **evaluation** with BM25 on the held-out questions, greedy: the base policy answering directly, with one
   search of the question (RAG), as an agent and forced to search first; the cold-start policy and the three
   RL policies as agents. F1, EM, cover-EM and format validity per source, as Markdown tables and a chart,
   and each run's curves (reward, format validity, searches per episode, noise share).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerosearch_rl.config import Config, load_config
from zerosearch_rl.data import DataError
from zerosearch_rl.wiki_recipe.data import BM25_HIT, RecipeData, build_data

PRESETS = Path(__file__).resolve().parents[1] / "presets" / "wiki"
RL_PRESET, SIM_PRESET = PRESETS / "grpo.yaml", PRESETS / "sim_sft.yaml"

#: RL runs: name -> engine overrides ("{tuned}"/"{untuned}" become the simulators' folders).
RL_RUNS: dict[str, tuple[str, ...]] = {
    "real engine (bm25)": ("search.backend=bm25",),
    "simulator, prompted (no SFT)": ("search.backend=simulate_prompt", "simulator.model={untuned}"),
    "simulator, tuned": ("search.backend=simulate_sft", "simulator.model={tuned}"),
}
BASE_METHODS = {"direct": "direct answer (no search)", "rag": "RAG (search the question once)",
                "agent": "before RL (greedy)", "agent_forced": "before RL, forced to search first"}
METRICS = ("f1", "exact_match", "cover_em", "format_valid")
CURVES = ("reward/mean", "reward/format_valid", "rollout/searches", "noise/served_share")


@dataclass(frozen=True)
class Plan:
    """How big each stage is: the recipe, or a micro one for tests."""

    size: str
    train_limit: int | None = None  # training questions used (None = all)
    test_limit: int | None = None  # test questions evaluated (None = all)
    cold_steps: int = 40  # optimizer steps of the cold start
    cold_batch: int = 8
    cold_lr: float = 1e-4
    rl: tuple[str, ...] = ()  # overrides of the RL preset, for every run
    sim: tuple[str, ...] = ()  # overrides of the simulator-SFT preset


PLANS = {
    "recipe": Plan("recipe"),
    # Micro: training questions whose own search finds the answer, a cold start long enough that sampling
    # sometimes reproduces the teacher (so GRPO's groups differ and the update is not zero), two RL steps.
    "micro": Plan("micro", train_limit=4, test_limit=2, cold_steps=3, cold_batch=2, cold_lr=3e-4,
                  rl=("trainer.total_steps=2", "trainer.batch_size=2", "rollout.n_samples=4",
                      "trainer.micro_batch_size=4", "curriculum.steps=2", "rollout.max_turns=2",
                      "rollout.max_new_tokens=24", "simulator.max_new_tokens=48"),
                  sim=("sim.epochs=0.25", "sim.train_batch_size=4", "sim.score_limit=2",
                       "sim.score_max_new_tokens=24", "sim.max_length=256")),
}


@dataclass(frozen=True)
class RecipeResult:
    tables: dict[str, str]  # metric -> Markdown table (rows = methods and runs, columns = sources, average)
    rows: list[tuple[str, dict[str, dict[str, float]]]]  # label -> source -> metric
    scores: dict[str, Any]  # sim score of the untuned and the tuned simulator
    finals: dict[str, Path]  # RL run name -> its final policy folder (beside the run's metrics.jsonl)
    data: RecipeData
    out: Path
    costs: dict[str, str]  # RL run name -> its cost line (summary.json's), "" for a run trained without one


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _engine(data: RecipeData) -> list[str]:
    """The real engine's ``search.*`` keys: BM25 over the recipe's passages."""
    return [f"search.corpus={data.corpus}", f"search.index_dir={data.folder / 'bm25_index'}",
            f"search.topk={data.topk}"]


def _limited(path: Path, limit: int | None, out: Path, bm25_hits: bool = False) -> Path:
    """``path`` itself, or its first ``limit`` rows (``bm25_hits``: of those whose own search finds the
    answer, so that a micro run has something to learn) written to ``out``."""
    if limit is None:
        return path
    lines = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
             if not bm25_hits or json.loads(line).get(BM25_HIT) is True]
    out.write_text("".join(lines[:limit]), encoding="utf-8")
    return out


def _rl_config(data: RecipeData, train: Path, policy: Path, root: Path, plan: Plan, name: str,
               extra: Sequence[str]) -> Config:
    return load_config(RL_PRESET, [f"model.policy={policy}", f"data.train_files=[{train}]",
                                   f"data.eval_files=[{data.test}]", *_engine(data),
                                   f"trainer.output_dir={root / 'rl' / _slug(name)}", *plan.rl, *extra])


def tune_simulator(data: RecipeData, train: Path, base: Path, root: Path, plan: Plan) -> tuple[Path, dict[str, Any]]:
    """The simulator-SFT stage; returns the tuned simulator and both simulators' scores."""
    from zerosearch_rl.simulator_sft.stage import tune_and_score

    sim_dir = root / "sim"
    files = (("records_path", "searches.jsonl"), ("labelled_path", "labelled.jsonl"), ("sft_path", "sft.jsonl"),
             ("heldout_path", "heldout.jsonl"), ("output_dir", "model"), ("score_dir", "score"))
    cfg = load_config(SIM_PRESET, [f"data.train_files=[{train}]", *_engine(data), f"sim.base_model={base}",
                                   *(f"sim.{k}={sim_dir / v}" for k, v in files), *plan.sim])
    return tune_and_score(cfg, base, ["search.backend=bm25", *_engine(data)])


def cold_start(data: RecipeData, train: Path, base: Path, root: Path, plan: Plan, seed: int) -> Path:
    """The cold-start stage: the base policy after a short SFT on the teacher's episodes."""
    out = root / "cold_start"
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zerosearch_rl.data import load_examples
    from zerosearch_rl.rollout import Rollout
    from zerosearch_rl.search import build_backend
    from zerosearch_rl.wiki_recipe.cold_start import cold_start_samples
    from zerosearch_rl.world.pretrain import TrainSpec, pretrain

    cfg = _rl_config(data, train, base, root, plan, "cold start", ["search.backend=bm25"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    engine = build_backend(cfg)
    try:
        rollout = Rollout(tokenizer, engine, cfg.rollout, seed=seed, prompt_style=cfg.model.prompt_style,
                          prompt_template=cfg.model.prompt_template)
        episodes = cold_start_samples(rollout, load_examples(list(cfg.data.train_files)))
    finally:
        engine.close()
    if not episodes.samples:
        raise DataError(f"the cold start found no question in {train} whose real-engine pages hold its answer "
                        f"({len(episodes.trajectories)} of {episodes.offered} kept)")
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    spec = TrainSpec(steps=plan.cold_steps, batch_size=plan.cold_batch, lr=plan.cold_lr,
                     warmup=max(1, plan.cold_steps // 10), weight_decay=0.0, precision=cfg.model.autocast)
    losses = pretrain(model, episodes.samples, spec, seed=seed, pad_id=tokenizer.pad_token_id or 0)
    tmp = root / ".cold_start.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "cold_start.json").write_text(json.dumps({
        "offered": episodes.offered, "kept": len(episodes.samples), "first_search": episodes.first_search,
        "reformulated": episodes.reformulated, "steps": spec.steps, "batch_size": spec.batch_size, "lr": spec.lr,
        "losses": losses}, indent=2) + "\n", encoding="utf-8")
    tmp.rename(out)  # in place only once whole: a stopped cold start leaves nothing that looks finished
    return out


def train_policy(data: RecipeData, train: Path, start: Path, root: Path, plan: Plan, base: Path, tuned: Path,
                 name: str) -> Path:
    """GRPO from ``start`` with the engine of ``RL_RUNS[name]`` (``rl_stage.train_run``: reused when done);
    returns the final policy's folder."""
    from zerosearch_rl.rl_stage import train_run

    overrides = [e.format(tuned=tuned, untuned=base) for e in RL_RUNS[name]]
    return train_run(_rl_config(data, train, start, root, plan, name, overrides), root / "eval" / _slug(name))


def evaluate_all(data: RecipeData, train: Path, root: Path, plan: Plan,
                 policies: dict[str, tuple[Path, list[str]]]) -> list[tuple[str, dict[str, dict[str, float]]]]:
    """Every metric per source with BM25 on the test questions: one row per (policy, method)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zerosearch_rl.data import load_examples
    from zerosearch_rl.evaluate import evaluate
    from zerosearch_rl.search import build_backend

    base = policies["base"][0]
    cfg = _rl_config(data, train, base, root, plan, "eval", ["search.backend=bm25"])
    tests = load_examples([_limited(data.test, plan.test_limit, root / "test_used.jsonl")])
    engine = build_backend(cfg)
    rows = []
    try:
        for name, (folder, methods) in policies.items():
            policy = AutoModelForCausalLM.from_pretrained(folder).eval()
            report = evaluate(policy, AutoTokenizer.from_pretrained(folder), engine, tests, methods, cfg,
                              root / "eval" / _slug(name), name=name, progress=True)
            for method in methods:
                label = BASE_METHODS[method] if name == "base" else name
                rows.append((label, report.results[method]))
    finally:
        engine.close()
    return rows


def run_recipe(out: str | Path = "runs/demo_real", size: str = "recipe", seed: int = 0,
               verbose: bool = False) -> RecipeResult:
    """All stages (cached on disk under ``out``), each one progress display and one line on the terminal
    (``console.stage``; the libraries' output in ``logs/``, on the terminal too when ``verbose``); writes
    ``table.md``, ``cost.txt`` (each RL run's cost line), ``f1.png`` and ``curves/``."""
    from zerosearch_rl.console import stage
    from zerosearch_rl.evaluate.report import chart, markdown_table, with_average
    from zerosearch_rl.packaged_models import smollm2_instruct
    from zerosearch_rl.rl_stage import run_lines, write_cost_lines
    from zerosearch_rl.tracking import plot_metrics, read_metrics

    plan, root = PLANS[size], Path(out)
    root.mkdir(parents=True, exist_ok=True)
    logs = root / "logs"
    with stage("data", logs / "data.log", verbose) as s:
        data = build_data(root / "data", seed=seed)
        train = _limited(data.train, plan.train_limit, root / "train_used.jsonl", bm25_hits=True)
        base = smollm2_instruct()
        s.summary = f"FanOutQA questions the Wikipedia leads answer, in {data.train.parent}"
    with stage("simulator SFT", logs / "simulator_sft.log", verbose) as s:
        tuned, scores = tune_simulator(data, train, base, root, plan)
        s.summary = "useful/noisy answer containment ratio " + ", ".join(
            f"{label} {score['containment_ratio']}" for label, score in scores.items())
    with stage("cold start", logs / "cold_start.log", verbose) as s:
        start = cold_start(data, train, base, root, plan, seed)
        s.summary = f"the policy RL starts from, in {start}"
    finals, costs = {}, {}
    for name in RL_RUNS:
        with stage(f"RL with the {name}", logs / f"rl_{_slug(name)}.log", verbose) as s:
            finals[name] = train_policy(data, train, start, root, plan, base, tuned, name)
            s.summary, costs[name] = run_lines(finals[name].parent)
    policies = {"base": (base, list(BASE_METHODS)), "after cold start, before RL": (start, ["agent"]),
                **{f"after RL with the {n}": (f, ["agent"]) for n, f in finals.items()}}
    with stage("evaluation", logs / "evaluation.log", verbose) as s:
        rows = evaluate_all(data, train, root, plan, policies)
        s.summary = f"{len(rows)} rows, {', '.join(METRICS)} with BM25"
    tables = {m: markdown_table([(label, with_average(by, m)) for label, by in rows], m) for m in METRICS}
    (root / "table.md").write_text("\n\n".join(tables.values()) + "\n", encoding="utf-8")
    write_cost_lines(root, costs)
    chart([(label, with_average(by, "f1")) for label, by in rows], "f1", root / "f1.png",
          "SmolLM2-135M on FanOutQA with BM25 over the Wikipedia leads: F1")
    (root / "curves").mkdir(exist_ok=True)
    for name, final in finals.items():
        plot_metrics(read_metrics(final.parent / "metrics.jsonl"), root / "curves" / f"{final.parent.name}.png",
                     CURVES, title=f"GRPO with the {name}")
    return RecipeResult(tables, rows, scores, finals, data, root, costs)
