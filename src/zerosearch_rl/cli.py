"""``zerosearch <command>``: parse arguments, build the config, call the library. No logic lives here."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from zerosearch_rl import __version__
from zerosearch_rl.config import ConfigError, describe_fields, dump_config, load_config
from zerosearch_rl.data import DataError, load_examples

#: Errors a user can fix from the message alone: printed on one line, exit code 2, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError)


def _config_show(args: argparse.Namespace) -> None:
    print(dump_config(load_config(args.file, args.overrides)), end="")


def _config_fields(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("key", "type", "default", "meaning", show_lines=False)
    for row in describe_fields():
        if not args.section or row[0].startswith(args.section + "."):
            table.add_row(*row)
    Console().print(table)


def _data_check(args: argparse.Namespace) -> None:
    examples = load_examples(args.files, sources=args.sources or (), limit=args.limit)
    counts = Counter(ex.source for ex in examples)
    for source, n in sorted(counts.items()):
        print(f"{source:>20}  {n}")
    print(f"{'total':>20}  {len(examples)} examples, ids unique, every row valid")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zerosearch",
        description="Train LLMs to search with RL against a simulated search engine (ZeroSearch).",
    )
    parser.add_argument("--version", action="version", version=f"zerosearch-rl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser("config", help="show the resolved config or document its fields")
    config_cmds = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_cmds.add_parser("show", help="print the resolved config of FILE with k=v overrides")
    show.add_argument("file", nargs="?", help="YAML config (omit for the defaults)")
    show.add_argument("overrides", nargs="*", metavar="section.field=value")
    show.set_defaults(run=_config_show)
    fields = config_cmds.add_parser("fields", help="list every config field with its meaning")
    fields.add_argument("section", nargs="?", help="only this section")
    fields.set_defaults(run=_config_fields)

    data = commands.add_parser("data", help="inspect QA data files")
    data_cmds = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = data_cmds.add_parser("check", help="validate parquet/JSONL files and count examples per source")
    check.add_argument("files", nargs="+")
    check.add_argument("--sources", nargs="*", help="keep only these data sources")
    check.add_argument("--limit", type=int, help="at most this many examples per file")
    check.set_defaults(run=_data_check)
    return parser


def _split_overrides(args: argparse.Namespace) -> None:
    """``config show a=b`` (no file): argparse takes the first override for the file; put it back."""
    if getattr(args, "file", None) and "=" in args.file:
        args.overrides = [args.file, *args.overrides]
        args.file = None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _split_overrides(args)
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except USER_ERRORS as exc:
        print(f"zerosearch: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
