"""The terminal: one progress display per stage, one summary line after it, library chatter in the stage's log.

A pipeline stage (``with stage("simulator SFT", log_file) as s:``) owns one rich progress display; each bar
of the work inside it (``progress(...)``: collecting, labelling, fine-tuning, scoring) is a line of that
display. Meanwhile what the libraries print goes to the stage's log file instead of the terminal: what the
Python loggers of transformers, TRL, datasets, accelerate, … emit at their own levels (our ``zerosearch_rl``
loggers at INFO: the simulator fine-tuning's loss records, for one), warnings, stray tqdm bars and anything
else written to ``sys.stderr``; transformers' own bars ("Loading weights", "Writing model shards") are
switched off. ``verbose=True`` leaves all of it on the terminal (the logging records still go to the file
too). When the stage ends its display goes, and one line stays: ``✓ title: summary (seconds; log file)``. On a
terminal that is not interactive (a pipe, a file) the display is not drawn: the summary lines are the output.

Outside a stage ``progress`` draws a bar of its own, as the single commands (``zerosearch train``,
``zerosearch sim collect``) always did.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: The loggers whose records belong in a stage's log file (``zerosearch_rl``: our own INFO lines, such as the
#: simulator fine-tuning's loss records).
CHATTY_LOGGERS = ("transformers", "trl", "datasets", "accelerate", "huggingface_hub", "peft", "torch",
                  "sentence_transformers", "py.warnings", "zerosearch_rl")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PLAIN: dict[str, Any] = {"markup": False, "highlight": False, "soft_wrap": True}  # a line as written, never wrapped


class _StderrSwitch:
    """What ``sys.stderr`` is during a quiet stage: writes go to the stage's log while it lasts, to the real
    stderr after it (a handler or bar created during the stage keeps this object, and must not write to a
    closed file later)."""

    def __init__(self, real: IO[str], log: IO[str]) -> None:
        self.real, self.log = real, log
        self.active = True

    def write(self, text: str) -> int:
        return (self.log if self.active else self.real).write(text)

    def flush(self) -> None:
        (self.log if self.active else self.real).flush()

    def isatty(self) -> bool:
        return False if self.active else self.real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@dataclass
class Stage:
    """A running stage: set ``summary`` before it ends (the text after its title on the closing line)."""

    title: str
    log_file: Path
    verbose: bool
    progress: Any = None  # the stage's one rich Progress
    summary: str = ""
    started: float = field(default_factory=time.perf_counter)

    def line(self, seconds: float) -> str:
        what = f": {self.summary}" if self.summary else ""
        return f"✓ {self.title}{what} ({seconds:.0f} s; log {self.log_file})"


_current: list[Stage] = []


def current_stage() -> Stage | None:
    """The innermost running stage, if any."""
    return _current[-1] if _current else None


def _columns() -> tuple[Any, ...]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn())


class Bar:
    """One bar: ``advance(n, info)`` moves it on and replaces the text beside it; ``print`` writes a line above
    the display."""

    def __init__(self, progress: Any, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: float = 1, info: str | None = None) -> None:
        if self._progress is not None:
            fields = {} if info is None else {"info": info}
            self._progress.update(self._task, advance=n, **fields)

    def print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text)
        else:
            print(text)

    @property
    def speed(self) -> float | None:
        """Items per second so far (None before there is a rate)."""
        if self._progress is None:
            return None
        task = next(t for t in self._progress.tasks if t.id == self._task)
        return task.finished_speed or task.speed


@contextmanager
def progress(title: str, total: float, completed: int = 0, show: bool = True, info: str = "") -> Iterator[Bar]:
    """A bar of ``total`` steps: a line of the running stage's display, else a display of its own (none when
    ``show`` is false)."""
    running = current_stage()
    if not show:
        yield Bar(None, None)
        return
    if running is not None and running.progress is not None:
        task = running.progress.add_task(title, total=total, completed=completed, info=info)
        yield Bar(running.progress, task)
        running.progress.update(task, refresh=True)
        return
    from rich.progress import Progress

    with Progress(*_columns()) as own:
        yield Bar(own, own.add_task(title, total=total, completed=completed, info=info))


def _is_terminal(handler: logging.Handler) -> bool:
    """A handler writing to a stream (stderr, in practice) rather than to a file."""
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _chatty_loggers() -> list[logging.Logger]:
    """The chatty roots and every existing logger below them."""
    roots = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    below = [lg for name, lg in list(logging.root.manager.loggerDict.items()) if isinstance(lg, logging.Logger)
             and name not in CHATTY_LOGGERS and any(name.startswith(root + ".") for root in CHATTY_LOGGERS)]
    return roots + below


@contextmanager
def _library_output_to(log: IO[str], file_handler: logging.Handler, verbose: bool) -> Iterator[None]:
    """Send what the chatty loggers would print to ``file_handler`` (their levels stay; ours is INFO); unless
    ``verbose``, take it off the terminal, with the libraries' progress bars and everything written to stderr.
    Restores all of it afterwards."""
    hf_logging: Any = None
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    if hf_logging is not None:
        hf_logging.get_logger()  # its stderr handler exists before we take it off
    saved = {}
    for logger in _chatty_loggers():
        saved[logger] = (list(logger.handlers), logger.level, logger.propagate)
        terminal = [h for h in logger.handlers if _is_terminal(h)]
        kept = [h for h in logger.handlers if not _is_terminal(h) or verbose]
        root = logger.name in CHATTY_LOGGERS
        if root or (terminal and not logger.propagate):  # a record reaches the file once
            kept.append(file_handler)
        logger.handlers = kept
        logger.propagate = logger.propagate and not root
    ours = logging.getLogger("zerosearch_rl")
    ours.setLevel(logging.INFO)
    bars = hf_logging.is_progress_bar_enabled() if hf_logging is not None else False
    switch, shown = None, warnings.showwarning
    if not verbose:
        if hf_logging is not None:
            hf_logging.disable_progress_bar()
        logging.captureWarnings(True)  # warnings become records of py.warnings
        switch = _StderrSwitch(sys.stderr, log)
        sys.stderr = switch  # type: ignore[assignment]
    try:
        yield
    finally:
        if switch is not None:
            switch.active = False
            if sys.stderr is switch:
                sys.stderr = switch.real  # type: ignore[assignment]
            logging.captureWarnings(False)
            warnings.showwarning = shown
        if bars and hf_logging is not None:
            hf_logging.enable_progress_bar()
        for logger, (handlers, level, propagate) in saved.items():
            added = [h for h in logger.handlers if h is not file_handler and h not in handlers]
            logger.handlers = [*handlers, *added]  # handlers a library created meanwhile write to the switch
            logger.setLevel(level)
            logger.propagate = propagate


@contextmanager
def stage(title: str, log_file: str | Path, verbose: bool = False) -> Iterator[Stage]:
    """One stage of a pipeline (see the module's docstring); the log file is appended to."""
    from rich.progress import Progress

    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    running = Stage(title, path, verbose)
    with path.open("a", encoding="utf-8") as log:
        log.write(f"===== {title} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        log.flush()
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        with _library_output_to(log, handler, verbose):
            display = Progress(*_columns(), transient=True, redirect_stderr=verbose)
            display.disable = not display.console.is_terminal  # a log file or a pipe gets the summary lines only
            running.progress = display
            _current.append(running)
            try:
                with display:
                    yield running
            except BaseException:
                display.console.print(f"✗ {title} stopped (log {path})", **PLAIN)
                raise
            finally:
                _current.pop()
                handler.flush()
        display.console.print(running.line(time.perf_counter() - running.started), **PLAIN)
