"""What an evaluation writes, and how runs are compared.

A run folder holds ``traces.jsonl`` (one line per (method, question): full text with tags, documents,
scores), ``summary.json`` (scores, the resolved config, package versions), ``table.md`` and
``chart.png``. ``compare`` puts several run folders side by side in the shape of the ZeroSearch paper's
tables: one row per run and method, one column per data source, then the average over sources.

Every number is labelled with its metric. Rates (exact match, cover-EM, F1, format validity,
answered) are shown in percent; counts (searches, answer words, generated tokens) are per question.
The EM of each original is named beside ours (``ORIGINAL_NAMES``): what ZeroSearch's code calls EM
(``qa_em.em_check``: normalized gold is a substring of the normalized answer), the EM of its validation
and of its ``em`` reward option, is our ``cover_em``; Search-R1's ``em_check`` (normalized strings equal) is
our ``exact_match``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from zerosearch_rl.data import DataError
from zerosearch_rl.records import QAExample

TRACES_FILE = "traces.jsonl"
EVAL_CONFIG_FILE = "eval_settings.json"
SUMMARY_FILE = "summary.json"
TABLE_FILE = "table.md"
CHART_FILE = "chart.png"
#: The column of every question together (each question weighs the same).
OVERALL = "overall"
AVERAGE = "average"
RATES = ("exact_match", "cover_em", "f1", "response_cover_em", "answer_in_documents", "format_valid",
         "answered")
TABLE_METRICS = ("exact_match", "cover_em", "f1")
#: What the originals call our metrics (their ``verl/utils/reward_score/qa_em.py``), shown in table headers.
ORIGINAL_NAMES = {"exact_match": "Search-R1 EM", "cover_em": "ZeroSearch EM"}
#: The legend of table.md: each table metric's definition, with the originals' function names.
LEGEND = (
    "- `exact_match`: the normalized answer equals a normalized gold answer (Search-R1's `em_check`).\n"
    "- `cover_em`: a normalized gold answer is a substring of the normalized answer: what ZeroSearch's code "
    "calls EM (`qa_em.em_check`, its validation EM and `em` reward; Search-R1's `subem_check`).\n"
    "- `f1`: SQuAD token F1 against the best gold answer (ZeroSearch's `f1_score_cal`)."
)
#: Every per-item score, in the order tables show them.
ITEM_METRICS = ("exact_match", "cover_em", "f1", "response_cover_em", "answer_in_documents", "format_valid",
                "answered", "searches", "answer_words", "generated_tokens")


# ---------------------------------------------------------------- files


def append_traces(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows and make them durable before returning (a crash loses at most the batch in flight)."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())


def read_traces(path: Path) -> list[dict[str, Any]]:
    """The rows of a traces file (none if it does not exist).

    A last line cut short by an interruption (no newline, not valid JSON) is removed from the file, so
    that item is simply run again; a bad line anywhere else is an error naming the row. A (method, id)
    pair written twice is an error too: it would count twice.
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, seen = [], set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            if number == len(lines):  # the unfinished last line of an interrupted write
                with path.open("r+b") as fh:
                    fh.truncate(len(data) - len(raw))
                break
            raise DataError(f"{path}: row {number} is not valid JSON; fix or delete the file") from None
        key = (row.get("method"), row.get("id"))
        if key in seen:
            raise DataError(f"{path}: row {number} repeats method {key[0]!r}, id {key[1]!r}")
        seen.add(key)
        rows.append(row)
    else:
        if data and not data.endswith(b"\n"):  # a complete last row whose newline was never written
            with path.open("ab") as fh:
                fh.write(b"\n")
    return rows


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as JSON ({exc})") from None


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that decide the numbers."""
    out = {"python": platform.python_version()}
    for name in ("zerosearch-rl", "torch", "transformers", "bm25s", "vllm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------- tables


def _cell(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if metric in RATES else f"{value:.2f}"


def _unit(metric: str) -> str:
    unit = "%" if metric in RATES else "per question"
    return f"{metric} ({unit}; {ORIGINAL_NAMES[metric]})" if metric in ORIGINAL_NAMES else f"{metric} ({unit})"


def with_average(by_source: dict[str, dict[str, float]], metric: str) -> dict[str, float]:
    """``{source: value}`` plus ``average``: the mean over sources (each source weighs the same, as in the
    paper's Avg. column; ``overall`` in summary.json weighs each question the same instead)."""
    values = {s: v[metric] for s, v in by_source.items() if s != OVERALL}
    return values | {AVERAGE: sum(values.values()) / len(values)} if values else values


def markdown_table(rows: Sequence[tuple[str, dict[str, float]]], metric: str) -> str:
    """Rows = runs/methods, columns = sources in first-seen order, then the average."""
    sources = list(dict.fromkeys(s for _, values in rows for s in values if s != AVERAGE))
    columns = [*sources, AVERAGE]
    lines = [f"| {_unit(metric)} | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(metric, values.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def detail_table(method: str, by_source: dict[str, dict[str, float]]) -> str:
    """One method: rows = every metric, columns = sources and overall (with the item counts)."""
    columns = list(by_source)
    lines = [f"| {method} | " + " | ".join(f"{c} (n={int(by_source[c]['n'])})" for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for metric in ITEM_METRICS:
        lines.append(f"| {_unit(metric)} | " + " | ".join(_cell(metric, by_source[c][metric]) for c in columns) + " |")
    return "\n".join(lines)


def run_rows(label: str, results: dict[str, dict[str, dict[str, float]]],
             metric: str) -> list[tuple[str, dict[str, float]]]:
    return [(f"{label}: {method}" if label else method, with_average(by_source, metric))
            for method, by_source in results.items()]


def chart(rows: Sequence[tuple[str, dict[str, float]]], metric: str, path: Path, title: str) -> Path:
    """Grouped bars: one group per source (and the average), one bar per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [*dict.fromkeys(s for _, v in rows for s in v if s != AVERAGE), AVERAGE]
    width = 0.8 / max(1, len(rows))
    # the legend goes to the right of the axes, where it never hides a bar
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(columns) + 2) + 3.0, 3.6))
    for i, (label, values) in enumerate(rows):
        scale = 100 if metric in RATES else 1
        ax.bar([c + i * width for c in range(len(columns))], [scale * values.get(c, 0.0) for c in columns],
               width, label=label)
    ax.set_xticks([c + width * (len(rows) - 1) / 2 for c in range(len(columns))], columns, fontsize=8)
    ax.set_ylabel(_unit(metric))
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(out: Path, label: str, results: dict[str, dict[str, dict[str, float]]], config: dict[str, Any],
                  examples: Sequence[QAExample], seconds: float) -> None:
    """summary.json, table.md and chart.png of one run."""
    sources: dict[str, int] = {}
    for ex in examples:
        sources[ex.source] = sources.get(ex.source, 0) + 1
    write_json(out / SUMMARY_FILE, {"name": label, "results": results, "config": config, "versions": versions(),
                                    "questions": {"total": len(examples), "per_source": sources},
                                    "seconds_this_session": round(seconds, 2)})
    parts = [f"# Evaluation: {label}", "", LEGEND, ""]
    for metric in TABLE_METRICS:
        parts += [markdown_table(run_rows("", results, metric), metric), ""]
    parts += ["## Every metric, per method", ""]
    for method, by_source in results.items():
        parts += [detail_table(method, by_source), ""]
    (out / TABLE_FILE).write_text("\n".join(parts), encoding="utf-8")
    chart(run_rows("", results, "exact_match"), "exact_match", out / CHART_FILE, f"{label}: exact match")


def load_run(run_dir: str | Path) -> tuple[str, dict[str, dict[str, dict[str, float]]]]:
    """(name, results) of a finished run folder."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        raise DataError(f"{run_dir}: no {SUMMARY_FILE} (not an evaluation folder, or the run never finished)")
    summary = read_json(path)
    return str(summary["name"]), summary["results"]


def compare(run_dirs: Sequence[str | Path], metric: str = "exact_match", out: str | Path | None = None) -> str:
    """Several runs side by side (rows = run: method, columns = sources + average); writes ``out``.md/.png."""
    if metric not in ITEM_METRICS:
        raise DataError(f"unknown metric {metric!r}; valid: {', '.join(ITEM_METRICS)}")
    runs = [(Path(d), *load_run(d)) for d in run_dirs]
    names = [name for _, name, _ in runs]
    rows = []
    for folder, name, results in runs:
        label = name if names.count(name) == 1 else f"{name} ({folder.name})"  # same model, several runs
        rows += run_rows(label, results, metric)
    table = markdown_table(rows, metric)
    if out is not None:
        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
        chart(rows, metric, target.with_suffix(".png"), f"comparison: {metric}")
    return table
