"""One RL run as a stage of a demo pipeline (the tiny world's, the real-LM recipe's): trained once, then reused.

A run whose final policy is on disk is not trained again; a half-finished one starts over, and the old answers
of its policy go with it. The pre-flight's table goes to the stage's log (its tally and warnings to the terminal), a
failed check refuses before any weights load. The stage's closing line and the run's cost line come from the
run folder (``metrics.jsonl``, ``summary.json``), so a reused run reports them too.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from zerosearch_rl.config import Config

log = logging.getLogger(__name__)
COST_FILE = "cost.txt"  # each RL run's cost line, as a demo prints them (scripts/readme_chart.py reads it)


def train_run(cfg: Config, stale: Path) -> Path:
    """Train ``cfg`` unless its final policy exists (``stale``: the folder of that policy's old evaluation,
    removed with a half-finished run); returns the final policy's folder."""
    from zerosearch_rl.preflight import preflight, render_table
    from zerosearch_rl.trainer import Trainer

    final = Path(cfg.trainer.output_dir) / "final"
    if (final / "config.json").is_file():
        return final
    shutil.rmtree(cfg.trainer.output_dir, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)
    checks = preflight(cfg, show=False)  # raises, listing every failure, before any weights load
    table = render_table(checks, 1)
    log.info("%s", table)
    print(f"pre-flight: {table.splitlines()[-1]} (the table is in the stage's log)")
    for c in checks:
        if c.status == "warn":
            print(f"pre-flight warning: {c.name}: {c.text()}")
    trainer = Trainer(cfg)
    try:
        trainer.train()
    finally:
        trainer.close()
    return final


def run_lines(run_dir: Path) -> tuple[str, str]:
    """The stage's closing line (steps and reward, from metrics.jsonl) and the run's cost line (from its
    summary.json; empty for a run trained before runs wrote one)."""
    from zerosearch_rl.cost import SUMMARY_FILE, read_summary
    from zerosearch_rl.tracking import read_metrics

    rows = read_metrics(run_dir)
    line = f"{len(rows)} steps, reward {rows[0]['reward/mean']:.3f} -> {rows[-1]['reward/mean']:.3f}"
    cost = read_summary(run_dir)["line"] if (run_dir / SUMMARY_FILE).is_file() else ""
    return line, cost


def cost_line(name: str, line: str) -> str:
    """An RL run's line of a demo's closing summary."""
    return f"RL with the {name}: {line or 'no summary.json (trained before runs wrote one)'}"


def write_cost_lines(root: Path, costs: dict[str, str]) -> Path:
    """``cost.txt``: one ``cost_line`` per run."""
    path = root / COST_FILE
    path.write_text("".join(f"{cost_line(name, line)}\n" for name, line in costs.items()), encoding="utf-8")
    return path
