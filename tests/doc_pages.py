"""Reading the project's Markdown pages the way GitHub renders them: fenced blocks, heading anchors, links."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language (first word of the info string), ``title="..."`` if any, and text."""

    language: str
    title: str
    text: str
    line: int


def pages() -> list[Path]:
    """Every Markdown page a reader is sent to: the front pages and docs/."""
    return [ROOT / "README.md", ROOT / "README.zh-CN.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a page, in order (a fence closes with the same characters, at least as many)."""
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        start, body = i, []
        i += 1
        while i < len(lines) and not (lines[i].startswith(fence[0] * len(fence)) and not lines[i].strip(fence[0])):
            body.append(lines[i])
            i += 1
        title = _TITLE.search(info)
        out.append(Block(info.split()[0] if info else "", title.group(1) if title else "", "\n".join(body) + "\n",
                         start + 1))
        i += 1
    return out


def prose(text: str) -> str:
    """The page without its fenced blocks (links and headings inside code are not links or headings)."""
    lines, keep, inside = text.splitlines(), [], ""
    for line in lines:
        m = _FENCE.match(line)
        if inside:
            if line.startswith(inside) and not line.strip(inside[0]):
                inside = ""
            keep.append("")
        elif m:
            inside = m.group(1)
            keep.append("")
        else:
            keep.append(line)
    return "\n".join(keep)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters of every script, digits and _
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page, repeated headings numbered ``-1``, ``-2``, … as GitHub does."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose(text).splitlines():
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[str]:
    """The targets of every Markdown link and image outside code."""
    return [m.group(1) or m.group(2) for m in _LINK.finditer(prose(text))]


def commands(block: Block) -> list[list[str]]:
    """The command lines of a shell block, each split as the shell would (comments dropped, ``\\`` joined)."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out
