"""Keep the front pages' demo figures those of a run: paste a run's table and cost lines, redraw the chart.

    python scripts/readme_chart.py                          # README.md's exact_match table -> docs/images/demo_em.png
    python scripts/readme_chart.py --run runs/world_demo    # first paste that run's table.md and cost.txt into
                                                            # README.md and README.zh-CN.md, then redraw

The table in README.md is what `make demo` printed (its `table.md`); redrawing the chart from it keeps the two
from agreeing by hand. With ``--run`` the run's rows replace the cells of both front pages' tables (the Chinese
page keeps its translated row labels, row for row) and its cost lines replace the ``console`` block of each;
the figures of the old table that the prose still cites are listed, since prose is rewritten by a person.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from zerosearch_rl.evaluate.report import chart

ROOT = Path(__file__).resolve().parents[1]
READMES = (ROOT / "README.md", ROOT / "README.zh-CN.md")
HEADER = re.compile(r"^\|\s*exact_match \(%[^|]*\)\s*\|(.*)\|\s*$")
CONSOLE = re.compile(r"^```console\n.*?^```$", re.M | re.S)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_span(page: str) -> tuple[int, int, list[str]]:
    """Where the `| exact_match (%...) |` table's rows are (line indices, end excluded) and its columns."""
    lines = page.splitlines()
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if m:
            end = i + 2
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            return i + 2, end, [c.strip() for c in m.group(1).split("|")]
    raise SystemExit("no '| exact_match (%) |' table")


def demo_rows(page: str) -> list[tuple[str, dict[str, float]]]:
    """The rows of a page's (or a table.md's) exact_match table as (label, {column: rate})."""
    start, end, columns = table_span(page)
    rows = []
    for line in page.splitlines()[start:end]:
        label, *cells = _cells(line)
        rows.append((label, {c: float(v) / 100 for c, v in zip(columns, cells, strict=True)}))
    return rows


def paste_table(page: str, run_table: str, keep_labels: bool) -> str:
    """``page`` with its table's cells replaced by ``run_table``'s rows (the same columns, the same number of
    rows; the page's own labels when ``keep_labels``, else the run's, which must then match the page's)."""
    start, end, columns = table_span(page)
    r_start, r_end, r_columns = table_span(run_table)
    lines, run = page.splitlines(), [_cells(line) for line in run_table.splitlines()[r_start:r_end]]
    mine = [_cells(line) for line in lines[start:end]]
    if r_columns != columns or len(run) != len(mine):
        raise SystemExit(f"the run's table ({len(run)} rows: {r_columns}) is not the page's ({len(mine)} rows: "
                         f"{columns}): update the page by hand")
    if not keep_labels and [r[0] for r in run] != [m[0] for m in mine]:
        raise SystemExit(f"the run's rows {[r[0] for r in run]} are not the page's {[m[0] for m in mine]}")
    lines[start:end] = [f"| {' | '.join([m[0], *r[1:]])} |" for m, r in zip(mine, run, strict=True)]
    return "\n".join(lines) + ("\n" if page.endswith("\n") else "")


def paste_costs(page: str, cost_lines: str) -> str:
    """``page`` with its one ``console`` block holding ``cost_lines``."""
    found = CONSOLE.findall(page)
    if len(found) != 1:
        raise SystemExit(f"expected one ```console block (the demo's cost lines), found {len(found)}")
    return CONSOLE.sub(lambda _: f"```console\n{cost_lines.strip()}\n```", page)


def stale_figures(before: str, after: str) -> list[str]:
    """Figures of the old table that are gone from the new one but still in the page's text outside tables."""
    old = {v for _, values in demo_rows(before) for v in (f"{100 * x:.1f}" for x in values.values())}
    new = {v for _, values in demo_rows(after) for v in (f"{100 * x:.1f}" for x in values.values())}
    prose = "\n".join(line for line in after.splitlines() if not line.startswith("|"))
    return sorted(v for v in old - new if re.search(rf"(?<![\d.]){re.escape(v)}(?![\d])", prose))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(READMES[0]))
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "demo_em.png"))
    parser.add_argument("--run", help="a `world demo` output folder: paste its table.md and cost.txt first")
    args = parser.parse_args()
    if args.run:
        run = Path(args.run)
        table, costs = (run / "table.md").read_text(encoding="utf-8"), (run / "cost.txt").read_text(encoding="utf-8")
        for page, keep_labels in zip(READMES, (False, True), strict=True):
            before = page.read_text(encoding="utf-8")
            after = paste_costs(paste_table(before, table, keep_labels), costs)
            page.write_text(after, encoding="utf-8")
            print(f"pasted {run}'s table and cost lines into {page.name}")
            for figure in stale_figures(before, after):
                print(f"  {page.name}'s text still cites {figure}, which is no longer in the table")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chart(demo_rows(Path(args.readme).read_text(encoding="utf-8")), "exact_match", out,
          "Tiny world: exact match with the real engine")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
