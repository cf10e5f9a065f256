"""Where training metrics go: a JSONL file always, TensorBoard and wandb when asked, and PNG plots."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zerosearch_rl.health import EVENTS
from zerosearch_rl.jsonl import iter_rows

METRICS_FILE = "metrics.jsonl"
log = logging.getLogger(__name__)


class MetricsError(ValueError):
    """A metrics file, or a plot of one, that cannot be made; the message names the file and the line."""


def _split_cut_line(data: bytes) -> tuple[bytes, bytes]:
    """(the complete lines, a cut last line): a process killed while writing a line leaves it without its
    newline and unparsable. A last line that parses, or ends in a newline, is complete."""
    if not data.strip() or data.endswith(b"\n"):
        return data, b""
    head, _, last = data.rpartition(b"\n")
    try:
        json.loads(last.decode("utf-8"))
        return data, b""
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return head + b"\n" if head else b"", last


def metrics_rows(path: Path) -> tuple[list[dict[str, Any]], bytes]:
    """The rows of a metrics file and the cut last line left out (b"" when there is none). Any other bad line
    is a ``MetricsError`` naming the file and the line."""
    complete, cut = _split_cut_line(path.read_bytes())
    rows = []
    for line_no, row in iter_rows(complete.splitlines(keepends=True), path, MetricsError):
        if not isinstance(row.get("step"), int):
            raise MetricsError(f"{path}: row {line_no}: no integer 'step' (not a metrics file of zerosearch train?)")
        rows.append(row)
    return rows, cut


def repair_metrics(path: Path) -> None:
    """Drop a cut last line from a metrics file (what a crash mid-write leaves), with a notice; a resumed run then
    appends to whole lines only."""
    if not path.is_file():
        return
    rows, cut = metrics_rows(path)
    if cut:
        log.warning("%s: dropped a partial last line (a crash while it was written): %r", path, cut[:80].decode(
            "utf-8", "replace"))
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


class MetricsLogger:
    """One JSON line per step in ``run_dir/metrics.jsonl`` (flushed at once), plus optional sinks.

    On resume from step ``s`` the lines of steps after ``s`` are dropped (they belong to the part of
    the run being redone); every earlier line is kept.
    """

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = False,
                 wandb_project: str = "", config: dict[str, Any] | None = None) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            kept = [r for r in metrics_rows(self.path)[0] if r["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        elif self.path.is_file():
            self.path.unlink()
        self._file = self.path.open("a", encoding="utf-8")
        self._tb: Any = None
        self._wandb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError("trainer.tensorboard needs the tensorboard package: pip install tensorboard") from exc
            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if wandb_project:
            try:
                import wandb
            except ImportError as exc:
                raise ImportError("trainer.wandb_project needs wandb: pip install 'zerosearch-rl[wandb]'") from exc
            self._wandb = wandb.init(project=wandb_project, config=config, dir=str(run_dir))

    def log(self, step: int, metrics: dict[str, float], events: Sequence[dict[str, Any]] = ()) -> None:
        """One step's line; ``events`` (the health watch's, as ``HealthEvent.record``) go into it as a list
        under ``health/events`` (the JSONL file only: they are not scalars)."""
        clean: dict[str, Any] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                 for k, v in metrics.items()}
        if events:
            clean[EVENTS] = list(events)
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics file (a run folder or the JSONL file itself)."""
    p = Path(path)
    p = p / METRICS_FILE if p.is_dir() else p
    if not p.is_file():
        raise MetricsError(f"no metrics at {p}" + ("" if p.parent.is_dir() else f" ({p.parent} does not exist)"))
    rows, cut = metrics_rows(p)
    if cut:
        log.warning("%s: left out a partial last line (a run killed while it was written)", p)
    return rows


DEFAULT_CURVES = ("reward/mean", "reward/exact_match", "rollout/searches", "noise/probability")
EVENT_COLOR = "#c44e52"


def event_steps(rows: Sequence[dict[str, Any]]) -> list[int]:
    """The steps at which the health watch fired (their lines hold ``health/events``)."""
    return [r["step"] for r in rows if r.get(EVENTS)]


def metrics_figure(rows: Sequence[dict[str, Any]], keys: Sequence[str] = DEFAULT_CURVES, title: str = "") -> Any:
    """One panel per metric against the step (a matplotlib Figure); the noise probability is drawn on every
    reward panel, a dotted vertical line on every panel at each step where the health watch fired."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in keys if any(k in r and r[k] is not None for r in rows)]
    if not present:
        there = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "step"})
        raise MetricsError(f"none of {', '.join(keys)} is in the metrics; they hold: {', '.join(there) or 'no rows'}")
    fig, axes = plt.subplots(len(present), 1, figsize=(7, 2.2 * len(present)), sharex=True, squeeze=False)
    steps_noise = [(r["step"], r["noise/probability"]) for r in rows if r.get("noise/probability") is not None]
    events = event_steps(rows)
    for ax, key in zip(axes[:, 0], present, strict=True):
        points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], color="#4c72b0", label=key)
        for step in events:
            ax.axvline(step, color=EVENT_COLOR, linestyle=":", linewidth=1)
        ax.set_ylabel(key, fontsize=8)
        if key.startswith("reward/") and steps_noise:
            twin = ax.twinx()
            twin.plot([p[0] for p in steps_noise], [p[1] for p in steps_noise], color="#dd8452", linestyle="--",
                      label="noise probability")
            twin.set_ylabel("noise p", fontsize=8, color="#dd8452")
    axes[-1, 0].set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metrics(rows: Sequence[dict[str, Any]], out: str | Path, keys: Sequence[str] = DEFAULT_CURVES,
                 title: str = "") -> Path:
    """``metrics_figure`` written to the image ``out`` (a PNG, or any format matplotlib writes, by its suffix)."""
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    target = Path(out)
    kinds = FigureCanvasBase.get_supported_filetypes()
    if target.suffix.lstrip(".").lower() not in kinds:
        raise MetricsError(f"{target}: cannot draw a {target.suffix or 'file without a suffix'}; valid: "
                           f"{', '.join('.' + k for k in sorted(kinds))}")
    fig = metrics_figure(rows, keys, title)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
