"""How a ``zerosearch`` command ends: every error of ours, every file-system error and a missing optional package
in one line ``zerosearch: error: ...`` with its exit code (docs/design.md, §Bad input gets a clear error)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from zerosearch_rl.config import ConfigError
from zerosearch_rl.data import DataError
from zerosearch_rl.health import HealthStop
from zerosearch_rl.net import EndpointError
from zerosearch_rl.protocol import PromptError
from zerosearch_rl.run_folder import RunError
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.corpus import CorpusError
from zerosearch_rl.tracking import MetricsError

#: Errors a user can fix from the message alone: printed on one line, exit code 2, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, CorpusError, PromptError, SearchError,
                                            EndpointError, HealthStop, MetricsError, RunError)
#: File-system errors about a path the user gave (exit 2, as bad input); any other OSError (a full disk, an I/O
#: error) and a missing optional package (our ImportErrors say what to install) exit 1, also on one line.
PATH_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                                          PermissionError)
ONE_LINE_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, OSError, ImportError)


def message(exc: BaseException) -> str:
    """One line for an error: an OSError as ``path: reason``, anything else as its message."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        path = Path(str(exc.filename))
        blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
        if isinstance(exc, (NotADirectoryError, FileExistsError)) and blocker is not None:  # mkdir meets a file
            where = "" if blocker == path else f"{path}: "
            return f"{where}{blocker} is a file, not a folder"
        paths = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        return f"{paths}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _notices() -> logging.Handler:
    """Our modules' warnings (a retry, a repaired file) as ``zerosearch: ...`` lines on stderr while a command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("zerosearch: %(message)s"))
    logging.getLogger("zerosearch_rl").addHandler(handler)
    return handler


def run_command(run: Callable[[argparse.Namespace], None], args: argparse.Namespace, debug: bool) -> int:
    """Run one parsed command and return its exit code: 0, or 2 for bad input and 1 for any other error of
    ``ONE_LINE_ERRORS``, each printed on one line; Ctrl-C prints ``zerosearch: interrupted ...`` (130). With
    ``debug`` these errors raise, traceback and all. Any other exception is a bug: it raises."""
    handler = _notices()
    try:
        run(args)
    except KeyboardInterrupt as exc:
        if debug:
            raise
        print(f"zerosearch: {message(exc) if str(exc) else 'interrupted'}", file=sys.stderr)
        return 130
    except ONE_LINE_ERRORS as exc:
        if debug:
            raise
        print(f"zerosearch: error: {message(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, USER_ERRORS + PATH_ERRORS) else 1
    finally:
        logging.getLogger("zerosearch_rl").removeHandler(handler)
    return 0
