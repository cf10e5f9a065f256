"""Draw the front page's demo chart from the front page's demo table, with the chart function the demo uses.

    python scripts/readme_chart.py            # README.md's exact_match table -> docs/images/demo_em.png

The table in README.md is what `make demo` printed (its `table.md`); redrawing it here keeps the chart and
the table from disagreeing. After a new demo run, paste its `table.md` into README.md (and README.zh-CN.md)
and run this again.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from zerosearch_rl.evaluate.report import chart

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"^\|\s*exact_match \(%\)\s*\|(.*)\|\s*$")


def demo_rows(readme: str) -> list[tuple[str, dict[str, float]]]:
    """The rows of the README's `| exact_match (%) | ... |` table as (label, {column: rate})."""
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if m:
            columns = [c.strip() for c in m.group(1).split("|")]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                label, *cells = [c.strip() for c in row.strip().strip("|").split("|")]
                rows.append((label, {c: float(v) / 100 for c, v in zip(columns, cells, strict=True)}))
            return rows
    raise SystemExit("README.md has no '| exact_match (%) |' table")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "demo_em.png"))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chart(demo_rows(Path(args.readme).read_text(encoding="utf-8")), "exact_match", out,
          "Tiny world: exact match with the real engine")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
