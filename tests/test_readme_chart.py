"""scripts/readme_chart.py: a run's table and cost lines pasted into the front pages, stale prose figures named."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_chart", ROOT / "scripts" / "readme_chart.py")
readme_chart = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_chart)

RUN_TABLE = """| exact_match (%; Search-R1 EM) | single_hop | two_hop | average |
|---|---:|---:|---:|
| direct answer (no search) | 4.5 | 3.0 | 3.8 |
| after RL with the simulator, no SFT | 9.1 | 6.1 | 7.6 |
"""
PAGE = """Intro.

| exact_match (%) | single_hop | two_hop | average |
|---|---:|---:|---:|
| {a} | 4.5 | 3.0 | 3.8 |
| {b} | 4.4 | 4.4 | 4.4 |

The untuned simulator teaches nothing (4.4); memory gives 3.8.

```console
(filled in by the next make demo)
```
"""
EN = PAGE.format(a="direct answer (no search)", b="after RL with the simulator, no SFT")
ZH = PAGE.format(a="直接回答（不搜索）", b="用未经 SFT 的模拟器做 RL 之后")


def test_a_runs_table_replaces_the_cells_and_the_chinese_page_keeps_its_labels():
    en = readme_chart.paste_table(EN, RUN_TABLE, keep_labels=False)
    zh = readme_chart.paste_table(ZH, RUN_TABLE, keep_labels=True)
    assert "| after RL with the simulator, no SFT | 9.1 | 6.1 | 7.6 |" in en
    assert "| 用未经 SFT 的模拟器做 RL 之后 | 9.1 | 6.1 | 7.6 |" in zh
    assert readme_chart.demo_rows(en)[1] == ("after RL with the simulator, no SFT",
                                             {"single_hop": 0.091, "two_hop": 0.061, "average": 0.076})
    assert en.replace("9.1 | 6.1 | 7.6", "4.4 | 4.4 | 4.4") == EN  # nothing else changed


def test_a_run_with_other_rows_is_refused():
    other = RUN_TABLE.replace("direct answer (no search)", "chain of thought")
    with pytest.raises(SystemExit, match="are not the page's"):
        readme_chart.paste_table(EN, other, keep_labels=False)
    with pytest.raises(SystemExit, match="is not the page's"):
        readme_chart.paste_table(EN, RUN_TABLE + "| one more row | 1.0 | 1.0 | 1.0 |\n", keep_labels=False)


def test_the_cost_lines_replace_the_console_block():
    lines = "RL with the real engine (bm25): cost: 5,000 searches (bm25 5,000); ...\n"
    page = readme_chart.paste_costs(EN, lines)
    assert "```console\nRL with the real engine (bm25): cost: 5,000 searches (bm25 5,000); ...\n```" in page
    assert "filled in" not in page
    with pytest.raises(SystemExit, match="found 2"):
        readme_chart.paste_costs(EN + EN, lines)


def test_figures_the_prose_still_cites_are_named():
    after = readme_chart.paste_table(EN, RUN_TABLE, keep_labels=False)
    assert readme_chart.stale_figures(EN, after) == ["4.4"]  # 3.8 is still in the table


def test_the_front_pages_tables_are_readable():
    for page in readme_chart.READMES:
        rows = readme_chart.demo_rows(page.read_text(encoding="utf-8"))
        assert len(rows) == 7 and all(0 <= v <= 1 for _, values in rows for v in values.values())
