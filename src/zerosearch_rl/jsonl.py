"""JSONL read row by row, with errors that name the file and the row (light module: no torch)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def iter_rows(lines: Iterable[bytes], path: Path, error: type[ValueError]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based row number, object) for each non-blank line; ``error`` says which line is bad and why.

    A byte-order mark before the first row is tolerated.
    """
    for line_no, raw in enumerate(lines, start=1):
        where = f"{path}: row {line_no}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if line_no == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object (one per line), got {type(row).__name__}")
        yield line_no, row
