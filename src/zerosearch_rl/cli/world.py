"""``zerosearch world build|pretrain``: the tiny synthetic world and its tiny models (no logic here)."""

from __future__ import annotations

import argparse
from typing import Any

from zerosearch_rl.world.facts import SIZES


def _build(args: argparse.Namespace) -> None:
    from zerosearch_rl.world.build import build_world

    files = build_world(args.out, args.size, args.seed)
    for path in files.all():
        print(f"wrote {path}")


def _pretrain(args: argparse.Namespace) -> None:
    from zerosearch_rl.world.models import build_models

    summary = build_models(args.out, args.size, args.seed)
    print(f"vocabulary: {summary['vocabulary']} words")
    for name in ("policy", "simulator"):
        s = summary[name]
        print(f"{name}: {s['parameters']:,} parameters, {s['steps']} steps in {s['seconds']:.0f} s, "
              f"loss {s['loss_first']:.2f} -> {s['loss_last_50']:.2f}; saved to {args.out}/{name}")


def _demo(args: argparse.Namespace) -> None:
    from zerosearch_rl.rl_stage import COST_FILE, cost_line
    from zerosearch_rl.world.pipeline import run_pipeline

    result = run_pipeline(args.out, args.size, args.seed, args.verbose)
    for label, score in result.scores.items():
        print(f"simulator {label}: useful/noisy answer containment ratio {score['containment_ratio']}")
    print(result.table)
    for name, line in result.costs.items():
        print(cost_line(name, line))
    print(f"wrote {result.out / 'table.md'}, {result.out / COST_FILE}, {result.out / 'em.png'} and "
          f"{result.out / 'curves'}/")


def register(commands: Any) -> None:
    """Add the ``world`` command group to the top-level subparsers."""
    world = commands.add_parser("world", help="the tiny synthetic world of the demo and its tiny models")
    actions = world.add_subparsers(dest="world_command", metavar="ACTION", required=True)
    for name, run, default_out, what in (
        ("build", _build, "runs/world", "write the corpora (eras A and B) and the QA splits"),
        ("pretrain", _pretrain, "runs/world_models",
         "build the world, its tokenizer, the base policy and the simulator LM (bit-reproducible)"),
        ("demo", _demo, "runs/world_demo",
         "the whole pipeline: simulator SFT, GRPO with the real and the simulated engines, evaluation"),
    ):
        cmd = actions.add_parser(name, help=what)
        cmd.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
        cmd.add_argument("--size", choices=SIZES, default="demo", help="world size preset (default demo)")
        cmd.add_argument("--seed", type=int, default=0, help="seed of the world and the models (default 0)")
        if name == "demo":
            cmd.add_argument("--verbose", action="store_true",
                             help="show the libraries' output on the terminal (it always goes to OUT/logs/)")
        cmd.set_defaults(run=run)
