"""``zerosearch wiki data|demo``: the real-LM recipe on the offline Wikipedia leads (no logic here)."""

from __future__ import annotations

import argparse
from typing import Any


def _data(args: argparse.Namespace) -> None:
    from zerosearch_rl.wiki_recipe.data import build_data

    data = build_data(args.out, seed=args.seed)
    print(data.summary())
    print(f"wrote {data.corpus}, {data.train}, {data.test}")


def _demo(args: argparse.Namespace) -> None:
    from zerosearch_rl.rl_stage import COST_FILE, cost_line
    from zerosearch_rl.wiki_recipe.pipeline import run_recipe

    result = run_recipe(args.out, args.size, args.seed, args.verbose)
    print(result.data.summary())
    for label, score in result.scores.items():
        print(f"simulator {label}: useful/noisy answer containment ratio {score['containment_ratio']}")
    print("\n\n".join(result.tables.values()))
    for name, line in result.costs.items():
        print(cost_line(name, line))
    print(f"wrote {result.out / 'table.md'}, {result.out / COST_FILE}, {result.out / 'f1.png'} and "
          f"{result.out / 'curves'}/")


def register(commands: Any) -> None:
    """Add the ``wiki`` command group to the top-level subparsers."""
    from zerosearch_rl.wiki_recipe.pipeline import PLANS

    wiki = commands.add_parser("wiki", help="the real-LM recipe: SmolLM2-135M learns to search Wikipedia leads")
    actions = wiki.add_subparsers(dest="wiki_command", metavar="ACTION", required=True)
    data = actions.add_parser("data", help="FanOutQA questions the leads answer, split by question, BM25 recall")
    data.add_argument("--out", default="runs/demo_real/data", help="output folder (default runs/demo_real/data)")
    data.set_defaults(run=_data)
    demo = actions.add_parser("demo", help="the whole recipe: data, simulator SFT, cold start, GRPO with three "
                                           "engines, evaluation (`make demo-real`)")
    demo.add_argument("--out", default="runs/demo_real", help="output folder (default runs/demo_real)")
    demo.add_argument("--size", choices=list(PLANS), default="recipe", help="recipe, or micro for a smoke run")
    demo.add_argument("--verbose", action="store_true",
                      help="show the libraries' output on the terminal (it always goes to OUT/logs/)")
    demo.set_defaults(run=_demo)
    for cmd in (data, demo):
        cmd.add_argument("--seed", type=int, default=0, help="seed of the split and the runs (default 0)")
