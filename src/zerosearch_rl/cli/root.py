"""``zerosearch <command>``: parse arguments, build the config, call the library. No logic lives here."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from zerosearch_rl import __version__
from zerosearch_rl.cli import eval as cli_eval
from zerosearch_rl.cli import sim as cli_sim
from zerosearch_rl.cli import wiki as cli_wiki
from zerosearch_rl.cli import world as cli_world
from zerosearch_rl.cli.args import add_config_args, add_run_folder_args, non_empty, positive_int
from zerosearch_rl.cli.errors import run_command
from zerosearch_rl.config import BACKENDS, SECTIONS, ConfigError, describe_fields, dump_config, load_config
from zerosearch_rl.data import DataError, load_examples
from zerosearch_rl.health import summary


def _config_show(args: argparse.Namespace) -> None:
    print(dump_config(load_config(args.file, args.overrides)), end="")


def _config_fields(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    if args.section and args.section not in SECTIONS:
        raise ConfigError(f"no config section {args.section!r}; valid: {', '.join(SECTIONS)}")
    table = Table("key", "type", "default", "meaning", show_lines=False)
    for row in describe_fields():
        if not args.section or row[0].startswith(args.section + "."):
            table.add_row(*row)
    Console().print(table)


def _data_check(args: argparse.Namespace) -> None:
    examples = load_examples(args.files, sources=args.sources or (), limit=args.limit)
    if not examples:
        held = sorted({ex.source for ex in load_examples(args.files)}) if args.sources else []
        raise DataError(f"no examples in {', '.join(args.files)}" + (
            f" of the sources {', '.join(args.sources)} (the files hold: {', '.join(held) or 'none'})" if held else ""))
    counts = Counter(ex.source for ex in examples)
    for source, n in sorted(counts.items()):
        print(f"{source:>20}  {n}")
    print(f"{'total':>20}  {len(examples)} examples, ids unique, every row valid")


def _search(args: argparse.Namespace) -> None:
    from zerosearch_rl.protocol import render_information
    from zerosearch_rl.records import SearchRequest
    from zerosearch_rl.search import build_backend

    cfg = load_config(args.config, args.overrides)
    backend = build_backend(cfg, args.engine)
    try:
        request = SearchRequest(query=args.query, question=args.question or args.query,
                                answers=tuple(args.answer or ()), noisy=args.noisy, sample_id="cli")
        (docs,) = backend.search([request])
    finally:
        backend.close()
    print(render_information(docs).replace("</information>", "").replace("<information>", ""), end="")


def _serve(args: argparse.Namespace) -> None:
    from zerosearch_rl.search import build_backend
    from zerosearch_rl.server import serve

    cfg = load_config(args.config, args.overrides)
    backend = build_backend(cfg)
    try:
        serve(backend, cfg.serve)
    finally:
        backend.close()


def _train(args: argparse.Namespace) -> None:
    import os

    from zerosearch_rl.preflight import preflight

    if args.processes is not None and (not args.check or args.processes < 1):
        raise ConfigError("--processes N (N >= 1) goes with --check; under torchrun the count is WORLD_SIZE")
    cfg = load_config(args.config, args.overrides)
    preflight(cfg, args.processes, show=os.environ.get("RANK", "0") == "0")  # every rank refuses, rank 0 prints
    if args.check:
        return
    from zerosearch_rl.trainer import Trainer

    trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite)
    try:
        history = trainer.train()
    finally:
        trainer.close()
        if trainer.rank == 0:
            print("\n".join(summary(trainer.health_events)))
    if trainer.rank == 0 and history:
        last = history[-1]
        print(f"done: {len(history)} steps, last reward {last['reward/mean']:.3f} "
              f"(exact match {last['reward/exact_match']:.3f}); run folder {trainer.run_dir}")
    if trainer.rank == 0 and trainer.cost is not None:
        print(trainer.cost.line())  # also in the run folder's summary.json


def _script(args: argparse.Namespace) -> None:
    import os

    from zerosearch_rl.original_scripts import resolve

    job = resolve(args.script, args.pairs, args.overrides)
    if args.dry_run:
        print(f"# {args.script} {' '.join(args.pairs)}\n# runs: {job.shell()}")
        print(dump_config(load_config(str(job.preset), list(job.overrides))), end="")
        return
    command = [*job.command(), *(["--resume"] if args.resume else []), *(["--overwrite"] if args.overwrite else [])]
    os.execv(command[0], command)


def _plot(args: argparse.Namespace) -> None:
    from zerosearch_rl.tracking import DEFAULT_CURVES, plot_metrics, read_metrics

    out = plot_metrics(read_metrics(args.run_dir), args.out or f"{args.run_dir.rstrip('/')}/curves.png",
                       args.keys or DEFAULT_CURVES)
    print(f"wrote {out}")


def _demo(args: argparse.Namespace) -> None:
    from zerosearch_rl.engines_demo import run_demo

    run_demo(args.out, simulator=not args.no_simulator, limit=args.limit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zerosearch",
        description="Train LLMs to search with RL against a simulated search engine (ZeroSearch).",
    )
    parser.add_argument("--version", action="version", version=f"zerosearch-rl {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an error, show the Python traceback, not just the "
                                                             "one-line message (anywhere on the line)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser("config", help="show the resolved config or document its fields")
    config_cmds = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_cmds.add_parser("show", help="print the resolved config of FILE with k=v overrides")
    show.add_argument("file", nargs="?", help="YAML config (omit for the defaults); section.field=value "
                                              "arguments anywhere on the line override it")
    show.set_defaults(run=_config_show)
    fields = config_cmds.add_parser("fields", help="list every config field with its meaning")
    fields.add_argument("section", nargs="?", help="only this section")
    fields.set_defaults(run=_config_fields)

    search = commands.add_parser("search", help="run one query against a search engine and print the documents")
    search.add_argument("query", type=non_empty)
    search.add_argument("--engine", choices=BACKENDS, help="override search.backend")
    search.add_argument("--question", type=non_empty, help="the question the simulator is told about (default: the "
                                                           "query)")
    search.add_argument("--answer", action="append", type=non_empty,
                        help="a gold answer for the simulator (repeatable)")
    search.add_argument("--noisy", action="store_true", help="ask a simulated engine for noisy documents")
    add_config_args(search)
    search.set_defaults(run=_search)

    serve = commands.add_parser("serve", help="put a search engine behind HTTP (Search-R1 /retrieve protocol)")
    add_config_args(serve)
    serve.set_defaults(run=_serve)

    train = commands.add_parser("train", help="RL training (GRPO / PPO / REINFORCE) of a search policy")
    add_config_args(train)
    add_run_folder_args(train)
    train.add_argument("--check", action="store_true", help="run the pre-flight checks only (batch arithmetic, "
                       "lengths, model files, engines, memory, disk): exit 0, or 2 when one fails")
    train.add_argument("--processes", type=int, help="with --check: the data-parallel process count to check for "
                       "(default: torchrun's WORLD_SIZE, else 1)")
    train.set_defaults(run=_train)

    script = commands.add_parser("script", help="run ZeroSearch's train_grpo.sh / train_ppo.sh / train_reinforce.sh "
                                                "arguments (KEY VALUE pairs) with this trainer")
    script.add_argument("script", help="train_grpo.sh, train_ppo.sh or train_reinforce.sh")
    script.add_argument("pairs", nargs="*", help="the original's KEY VALUE arguments, e.g. NUM_GPUS_PER_NODE 4 "
                                                 "MODEL_PATH Qwen2.5-3B-Instruct DATA_PATH ZeroSearch_dataset")
    script.add_argument("--dry-run", action="store_true", help="print the command and the resolved config only")
    add_run_folder_args(script)
    script.set_defaults(run=_script)

    plot = commands.add_parser("plot", help="draw a run's metric curves to a PNG")
    plot.add_argument("run_dir", help="run folder (or its metrics.jsonl)")
    plot.add_argument("--keys", nargs="*", help="metrics to draw (default: reward, searches, noise)")
    plot.add_argument("--out", help="PNG path (default: RUN/curves.png)")
    plot.set_defaults(run=_plot)

    demo = commands.add_parser("engines", help="the engines side by side on the built-in questions: BM25, BM25 over "
                               "HTTP, SmolLM2 simulating useful and noisy pages (`make demo-engines`)")
    demo.add_argument("--out", default="runs/engines", help="output folder")
    demo.add_argument("--no-simulator", action="store_true", help="skip the LLM-simulated engine")
    demo.add_argument("--limit", type=positive_int, help="use only the first N questions")
    demo.set_defaults(run=_demo)

    data = commands.add_parser("data", help="inspect QA data files")
    data_cmds = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_cmds.add_parser("check", help="validate parquet/JSONL files and count examples per source")
    check.add_argument("files", nargs="+")
    check.add_argument("--sources", nargs="*", help="keep only these data sources")
    check.add_argument("--limit", type=positive_int, help="at most this many examples per file")
    check.set_defaults(run=_data_check)
    cli_eval.register_data(data_cmds)
    cli_eval.register(commands)
    cli_sim.register(commands)
    cli_world.register(commands)
    cli_wiki.register(commands)
    return parser


_OVERRIDE = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*=")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``zerosearch`` command: the line parsed (``section.field=value`` overrides and ``--debug`` may stand
    anywhere), the command run; how it ends, errors included, is ``errors.run_command``'s."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    overrides = [a for a in argv if _OVERRIDE.match(a)]  # section.field=value, anywhere on the line
    args = build_parser().parse_args([a for a in argv if not _OVERRIDE.match(a) and a != "--debug"])
    args.overrides, args.debug = overrides, debug
    run: Callable[[argparse.Namespace], None] = args.run
    return run_command(run, args, debug)
