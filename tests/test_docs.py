"""The pages a reader is sent to hold together: links resolve, the front page's commands and files exist,
the Chinese front page says the same, and every section of docs/design.md that the code cites exists."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

from doc_pages import ROOT, Block, anchors, blocks, commands, links, pages, prose
from zerosearch_rl.cli.root import _OVERRIDE, build_parser
from zerosearch_rl.config import load_config
from zerosearch_rl.original_scripts import resolve

README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
DESIGN = ROOT / "docs" / "design.md"
#: Programs of other projects that the front page shows; anything else must be ours (zerosearch, make, scripts/).
EXTERNAL = {("huggingface-cli", "download"), ("python", "-m", "sglang.launch_server")}
#: The repository's own folders: a path under one of them that a command names must exist (runs/ and data/ are
#: what commands write).
_TOP = ("configs/", "scripts/", "src/", "docs/", "tests/", "benchmarks/")


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- links


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in links(text(page)):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(text(file)):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_checker_catches_a_broken_link_and_a_broken_anchor(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# A title\n\n[ok](#a-title) [bad](#no-such) [gone](missing.md)\n```\n[in code](x.md)\n```\n")
    found = links(text(page))
    assert found == ["#a-title", "#no-such", "missing.md"]  # nothing from inside the code block
    assert anchors(text(page)) == {"a-title"}


def test_anchors_are_githubs():
    page = ("# What `make demo` shows\n## Where it stands against the paper's claim\n## Token-in/token-out\n"
            "## Two\n## Two\n")
    assert anchors(page) == {"what-make-demo-shows", "where-it-stands-against-the-papers-claim", "token-intoken-out",
                             "two", "two-1"}


def test_every_docs_page_is_linked_from_the_front_page():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(text(README))}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md links no {missing}"


# ---------------------------------------------------------------- the front page's commands and files


def shell_commands(page: Path) -> list[list[str]]:
    return [c for b in blocks(text(page)) if b.language in ("bash", "sh", "shell") for c in commands(b)]


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", text(ROOT / "Makefile"), re.M))


def check_zerosearch(words: list[str]) -> None:
    """Parse as `zerosearch` does (a.b=c overrides anywhere); a --config file and its overrides must load."""
    overrides = [w for w in words if _OVERRIDE.match(w)]
    args = build_parser().parse_args([w for w in words if not _OVERRIDE.match(w)])
    config = getattr(args, "config", None)
    if config is not None:
        assert (ROOT / config).is_file(), f"{config} does not exist"
        load_config(str(ROOT / config), overrides)


def check_script(words: list[str]) -> None:
    """`bash scripts/train_X.sh KEY VALUE ...`: the script exists, runs `zerosearch script`, and its arguments
    resolve to a config that loads."""
    script = ROOT / words[0]
    assert script.is_file(), f"{words[0]} does not exist"
    assert f"zerosearch_rl script {script.name}" in text(script)
    job = resolve(script.name, [w for w in words[1:] if w != "--dry-run"])
    load_config(str(job.preset), list(job.overrides))


def check_command(words: list[str]) -> None:
    for word in words:  # every path of this repository that a command names exists
        if word.startswith(_TOP):
            assert (ROOT / word).exists(), f"{' '.join(words)}: {word} does not exist"
    if words[0] == "zerosearch":
        check_zerosearch(words[1:])
    elif words[0] == "make":
        assert set(words[1:]) <= make_targets(), f"{' '.join(words)}: no such Makefile target"
    elif words[0] == "bash":
        check_script(words[1:])
    else:
        assert any(tuple(words[: len(e)]) == e for e in EXTERNAL), f"unknown program in {' '.join(words)}"


def test_front_page_commands_exist():
    found = shell_commands(README)
    assert ["make", "demo"] in found and ["make", "test"] in found
    for words in found:
        check_command([w for w in words if w != "&"])


def subcommands() -> set[str]:
    (group,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(group.choices)


def test_front_page_inline_zerosearch_commands_exist():
    inline = [m.split() for m in re.findall(r"`(zerosearch [^`]+)`", prose(text(README)))]
    assert inline, "the front page names a zerosearch command in its prose"
    for words in inline:
        assert words[1] in subcommands(), f"`{' '.join(words)}`: no such command"
        if any(w.startswith("-") for w in words):  # a whole command line, not a command's name
            check_command(words)


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_every_zerosearch_command_of_the_docs_parses(page):
    """docs/ pages: each `zerosearch ...` line (or `torchrun ... -m zerosearch_rl ...`) parses, and the repository
    paths it names exist (configs are not loaded: a page may show a placeholder such as CONFIG)."""
    for words in shell_commands(page):
        if words[0] == "torchrun" and "zerosearch_rl" in words:
            words = ["zerosearch", *words[words.index("zerosearch_rl") + 1 :]]
        if words[0] != "zerosearch":
            continue
        for word in words:
            if word.startswith(_TOP):
                assert (ROOT / word).exists(), f"{' '.join(words)}: {word} does not exist"
        build_parser().parse_args([w for w in words[1:] if not _OVERRIDE.match(w)])


def test_checks_catch_a_wrong_command():
    with pytest.raises(SystemExit):
        check_zerosearch(["trian", "--config", "configs/smoke.yaml"])
    with pytest.raises(AssertionError):
        check_command(["make", "demoo"])
    with pytest.raises(AssertionError):
        check_command(["zerosearch", "config", "show", "configs/search_bm25.yaml"])
    with pytest.raises(Exception, match="TOTAL_STEP"):
        check_script(["scripts/train_grpo.sh", "TOTAL_STEP", "3"])


def tree_block(page: Path) -> Block:
    (tree,) = [b for b in blocks(text(page)) if b.language == "text"]
    return tree


def tree_paths(block: Block) -> list[str]:
    """The paths of an annotated tree: two spaces of indent per level, names before the first double space,
    several names on a line separated by one space, `a_{b,c}.sh` meaning a_b.sh and a_c.sh."""
    parents: list[str] = []
    out = []
    for line in block.text.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        names = re.split(r"\s{2,}", line.strip())[0].split(" ")
        parents = parents[:depth]
        for name in names:
            m = re.fullmatch(r"(.*)\{([^}]*)\}(.*)", name)
            for expanded in ([m.group(1) + part + m.group(3) for part in m.group(2).split(",")] if m else [name]):
                out.append("".join(parents) + expanded)
        if names[-1].endswith("/"):
            parents.append(names[-1])
    return out


def test_front_page_tree_names_real_files():
    paths = tree_paths(tree_block(README))
    assert "src/zerosearch_rl/trainer.py" in paths and "scripts/train_ppo.sh" in paths
    missing = [p for p in paths if not (ROOT / p).exists() or p.endswith("/") != (ROOT / p).is_dir()]
    assert not missing, f"the README's tree names {missing}"


# ---------------------------------------------------------------- the Chinese front page


def tables(page: Path) -> list[list[list[str]]]:
    """Every Markdown table outside code, as rows of cells (the |---| line left out)."""
    return tables_of(prose(text(page)))


def tables_of(body: str) -> list[list[list[str]]]:
    """The Markdown tables of a text, as rows of cells (the |---| line left out)."""
    out, current = [], []
    for line in [*body.splitlines(), ""]:
        if line.startswith("|"):
            if not re.fullmatch(r"\|[\s:|-]+\|?", line):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            out.append(current)
            current = []
    return out


_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])\d+(?:[.,]\d+)*(?![A-Za-z0-9_])")


def numbers(s: str) -> list[str]:
    return _NUMBER.findall(s)


def test_chinese_front_page_links_back_and_is_linked():
    assert "README.zh-CN.md" in links(text(README)) and "README.md" in links(text(README_ZH))


def test_chinese_front_page_has_the_same_commands_and_tree():
    assert shell_commands(README_ZH) == shell_commands(README)
    assert tree_paths(tree_block(README_ZH)) == tree_paths(tree_block(README))


def test_chinese_front_page_has_the_same_table_numbers():
    en, zh = tables(README), tables(README_ZH)
    assert len(en) == len(zh) >= 1
    for a, b in zip(en, zh, strict=True):  # the row labels are translated; every other cell is the same
        assert [row[1:] for row in a] == [row[1:] for row in b]


def test_chinese_front_page_has_the_same_figures():
    en, zh = numbers(prose(text(README))), numbers(prose(text(README_ZH)))
    assert sorted(set(en)) == sorted(set(zh)), (
        f"only in README.md: {sorted(set(en) - set(zh))}; only in README.zh-CN.md: {sorted(set(zh) - set(en))}")


# ---------------------------------------------------------------- docs/design.md, as the code cites it


def design_sections() -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#{2,4}\s+(.+)$", prose(text(DESIGN)), re.M)}


def code_files() -> list[Path]:
    roots = [ROOT / d for d in ("src", "tests", "configs", "scripts", "benchmarks")]
    this = Path(__file__).resolve()  # this file spells the patterns it looks for
    return [p for r in roots for p in r.rglob("*")
            if p.suffix in (".py", ".yaml", ".sh") and p.is_file() and p.resolve() != this]


def test_every_cited_design_section_exists():
    sections = sorted(design_sections(), key=len, reverse=True)
    bad, cited = [], 0
    for path in code_files():
        body = text(path)
        where = path.relative_to(ROOT)
        if "DESIGN.md" in body or re.search(r"\bcontracts? \d", body):
            bad.append(f"{where}: cites DESIGN.md or a numbered contract")
        for m in re.finditer(r"design\.md", body):
            if not body.startswith(", §", m.end()) or body[m.start() - 5 : m.start()] != "docs/":
                bad.append(f"{where}: 'design.md' without 'docs/design.md, §Section'")
        for m in re.finditer("§", body):
            cited += 1
            rest = body[m.end() :]
            if not any(rest.startswith(s) and not rest[len(s) : len(s) + 1].isalnum() for s in sections):
                bad.append(f"{where}: §{rest[:40]!r} is no section of docs/design.md")
    assert not bad, "\n".join(bad)
    assert cited >= 10  # the code does cite it


def test_every_docs_page_the_code_names_exists():
    named = {(f.relative_to(ROOT), m) for f in code_files() for m in re.findall(r"\bdocs/[\w-]+\.md", text(f))}
    assert len(named) >= 10
    missing = sorted(f"{f}: {m}" for f, m in named if not (ROOT / m).is_file())
    assert not missing, missing


def test_design_page_has_the_contract_sections_the_issue_names():
    assert {"Token-in/token-out", "The search request", "The noise draw", "One training step",
            "The layers"} <= design_sections()


# ---------------------------------------------------------------- docs/design.md's layers, as the imports are

PACKAGE = ROOT / "src" / "zerosearch_rl"
#: Imports that go against the layers today, each named on the page with the reason.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def layer_rows() -> list[tuple[str, list[str]]]:
    """The rows of the table under `## The layers`: (layer, the module paths and folders it names)."""
    section = prose(text(DESIGN)).split("## The layers", 1)[1].split("\n## ", 1)[0]
    (table,) = [t for t in tables_of(section) if t[0][:2] == ["layer", "modules (under `src/zerosearch_rl/`)"]]
    return [(row[0], re.findall(r"`([^`]+)`", row[1])) for row in table[1:]]


def layer_of(module: str, rows: list[tuple[str, list[str]]]) -> int | None:
    """The row of a module path (``search/bm25.py``): the row naming the file, else the one naming its
    deepest folder."""
    best: tuple[int, int] | None = None
    for index, (_, names) in enumerate(rows):
        for name in names:
            if name == module:
                return index
            if name.endswith("/") and module.startswith(name) and (best is None or len(name) > best[1]):
                best = (index, len(name))
    return best[0] if best else None


def module_file(dotted: str) -> str | None:
    """``zerosearch_rl.a.b`` as a path under the package (``a/b.py`` or ``a/b/__init__.py``)."""
    parts = dotted.split(".")[1:]
    for candidate in ("/".join(parts) + ".py", "/".join([*parts, "__init__.py"])):
        if (PACKAGE / candidate).is_file():
            return candidate
    return None


def imports(path: Path) -> set[str]:
    """The package's modules that a file imports, at any depth of its code, as paths under the package."""
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(text(path))):
        if isinstance(node, ast.Import):
            found |= {module_file(a.name) for a in node.names if a.name.startswith("zerosearch_rl.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zerosearch_rl":
            base = module_file(node.module)
            subs = {module_file(f"{node.module}.{a.name}") for a in node.names}
            found |= (subs - {None}) or {base}
    return {f for f in found if f is not None}


def test_every_module_has_a_layer_and_imports_only_layers_above_it():
    rows = layer_rows()
    assert len(rows) >= 8
    files = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    unplaced = [f for f in files if layer_of(f, rows) is None]
    assert not unplaced, f"docs/design.md's layer table has no row for {unplaced}"
    wrong = []
    for f in files:
        for target in sorted(imports(PACKAGE / f)):
            if layer_of(target, rows) > layer_of(f, rows) and (f, target) not in KNOWN_EXCEPTIONS:
                wrong.append(f"{f} ({rows[layer_of(f, rows)][0]}) imports {target} ({rows[layer_of(target, rows)][0]})")
    assert not wrong, "imports against docs/design.md's layers:\n" + "\n".join(wrong)
    for f, target in KNOWN_EXCEPTIONS:  # an exception that is gone must leave this list (and the page)
        assert target in imports(PACKAGE / f), f"{f} no longer imports {target}: drop the exception"
        assert f"`{f}`" in text(DESIGN)


def test_layer_check_sees_a_wrong_import(tmp_path):
    rows = [("core", ["records.py"]), ("engines", ["search/"]), ("front", ["cli/"])]
    assert layer_of("search/bm25.py", rows) == 1 and layer_of("cli/root.py", rows) == 2
    assert layer_of("x.py", rows) is None
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from zerosearch_rl.search.bm25 import BM25Backend\n    import zerosearch_rl.cli\n")
    assert imports(bad) == {"search/bm25.py", "cli/__init__.py"}


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of a module graph (``a -> b -> a`` as ``[a, b, a]``), or [] when it has none."""
    state: dict[str, int] = {}  # 1 on the path being walked, 2 done
    path: list[str] = []

    def walk(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := walk(target)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return []


def test_no_module_imports_one_that_imports_it_back():
    """The layer table allows imports within a layer; a cycle among them (as ``cli.py`` and ``cli_eval.py`` had)
    is still refused: each module must load without the other half-loaded."""
    files = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    cycle = import_cycle({f: imports(PACKAGE / f) for f in files})
    assert not cycle, "an import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_sees_a_cycle_however_long():
    assert import_cycle({"a.py": {"b.py"}, "b.py": {"c.py"}, "c.py": set()}) == []
    assert import_cycle({"a.py": {"b.py", "c.py"}, "b.py": {"c.py"}, "c.py": set()}) == []  # a diamond is no cycle
    assert import_cycle({"a.py": {"b.py"}, "b.py": {"c.py"}, "c.py": {"b.py"}}) == ["b.py", "c.py", "b.py"]
    assert import_cycle({"x.py": {"x.py"}}) == ["x.py", "x.py"]
