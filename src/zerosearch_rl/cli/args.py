"""Argument types and argument groups that several ``zerosearch`` commands share."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_empty(text: str) -> str:
    """An argparse type: text with something in it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``; the ``section.field=value`` overrides are taken off the line before parsing."""
    parser.add_argument("--config", help="YAML config file (omit for the defaults); section.field=value "
                                         "arguments anywhere on the line override it")


def add_run_folder_args(parser: argparse.ArgumentParser) -> None:
    """``--resume`` or ``--overwrite`` (one at most) for a command that writes a training run folder."""
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in trainer.output_dir from its newest intact checkpoint")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the run in trainer.output_dir (its files are removed first); without --resume "
                            "or --overwrite a folder that holds a run is refused")
