"""The search records that flow through the simulator pipeline, and the JSONL files that hold them.

One record is one search a collector made against a real engine:

``{"id", "unit", "example_id", "question", "answers", "query", "turn", "documents": [{"id", "title",
"text"}], "searches", "final_answer", "score", "collector", "engine"}`` — plus ``"label"`` (useful or noisy)
and ``"judge"`` once labelled.

``id`` is ``{unit}/{turn}``, where a *unit* is one trajectory (an example id, with ``#k`` for the k-th
policy sample), so it is stable across reruns. ``searches`` is the number of searches the unit's
trajectory made: a unit is complete when that many records of it are on disk, which is how an
interrupted collection knows what is left to do.

Files are appended one flushed line per record. A process killed mid-write can leave a truncated
last line; ``RecordWriter`` cuts it off before appending (that record is simply collected again),
while a bad line anywhere else is an error naming the file and row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from zerosearch_rl.data import DataError
from zerosearch_rl.jsonl import iter_rows
from zerosearch_rl.records import Document

LABELS = ("useful", "noisy")


@dataclass(frozen=True)
class SearchRecord:
    """One search of a collector, with what the real engine returned for it."""

    id: str
    unit: str
    example_id: str
    question: str
    answers: tuple[str, ...]
    query: str
    turn: int
    documents: tuple[Document, ...]
    searches: int
    final_answer: str | None = None
    score: float | None = None
    collector: str = ""
    engine: str = ""
    label: str | None = None
    judge: str | None = None

    @property
    def noisy(self) -> bool:
        """The label as the simulator's noise flag (an unlabelled record is an error to ask this of)."""
        if self.label not in LABELS:
            raise ValueError(f"record {self.id!r} has no label")
        return self.label == "noisy"

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["answers"] = list(self.answers)
        row["documents"] = [{"id": d.id, "title": d.title, "text": d.text, **({} if d.score is None else
                             {"score": d.score})} for d in self.documents]
        if self.label is None:
            del row["label"], row["judge"]
        return row

    def labelled(self, label: str, judge: str) -> SearchRecord:
        return replace(self, label=label, judge=judge)


def one_line(text: str) -> str:
    return " ".join(text.split())


def page_text(documents: Sequence[Document]) -> str:
    """Documents as ``Doc N: (Title: title) text`` lines, the simulator's output format.

    The title marker is the one the policy sees in a real engine's information block
    (``protocol.render_information``), and ``parse_documents`` reads it back into the title: a tuned
    simulator's pages then reach the policy in exactly the real engine's rendering, so what the policy
    learns to read during simulated training is what it reads at evaluation. A page without titles
    is plain ``Doc N: text`` lines.
    """
    return "\n".join(f"Doc {i}: {page_entry(d)}" for i, d in enumerate(documents, start=1))


def page_entry(document: Document) -> str:
    """One document of a page, after its ``Doc N:``: ``(Title: title) text``, or the text alone."""
    title, text = one_line(document.title), one_line(document.text)
    return f"(Title: {title}) {text}" if title else text


def _field(row: dict[str, Any], name: str, types: tuple[type, ...], where: str, optional: bool = False) -> Any:
    """``row[name]`` checked against ``types`` (a bool never passes for a number); None if optional and absent."""
    value = row.get(name)
    if value is None:
        if optional:
            return None
        if name not in row:
            raise DataError(f"{where}: missing field {name!r}")
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise DataError(f"{where}, field {name!r}: expected {_type_name(types)}, got {value!r}")
    return value


def _type_name(types: tuple[type, ...]) -> str:
    words = {"str": "a string", "int": "an integer", "float": "a number", "list": "a list"}
    return " or ".join(words.get(t.__name__, t.__name__) for t in types)


def _documents(value: list[Any], where: str) -> tuple[Document, ...]:
    docs = []
    for i, d in enumerate(value):
        at = f"{where}, field 'documents[{i}]'"
        if not isinstance(d, dict):
            raise DataError(f"{at}: expected an object with id, title and text, got {d!r}")
        text = d.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{at}.text: expected a non-empty string, got {text!r}")
        score = d.get("score")
        if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)):
            raise DataError(f"{at}.score: expected a number, got {score!r}")
        docs.append(Document(id=str(d.get("id", i)), title=str(d.get("title") or ""), text=text,
                             score=None if score is None else float(score)))
    return tuple(docs)


def record_from_json(row: dict[str, Any], where: str) -> SearchRecord:
    """Validate one JSON row; a problem raises ``DataError`` naming ``where`` (file and row) and the field."""
    answers = _field(row, "answers", (list,), where)
    if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        raise DataError(f"{where}, field 'answers': expected a non-empty list of strings, got {answers!r}")
    label = _field(row, "label", (str,), where, optional=True)
    if label is not None and label not in LABELS:
        raise DataError(f"{where}, field 'label': {label!r} is not valid; valid: {', '.join(LABELS)}")
    score = _field(row, "score", (int, float), where, optional=True)
    text = (str,)
    return SearchRecord(
        id=_field(row, "id", text, where), unit=_field(row, "unit", text, where),
        example_id=_field(row, "example_id", text, where), question=_field(row, "question", text, where),
        answers=tuple(answers), query=_field(row, "query", text, where), turn=_field(row, "turn", (int,), where),
        documents=_documents(_field(row, "documents", (list,), where), where),
        searches=_field(row, "searches", (int,), where),
        final_answer=_field(row, "final_answer", text, where, optional=True),
        score=None if score is None else float(score),
        collector=_field(row, "collector", text, where, optional=True) or "",
        engine=_field(row, "engine", text, where, optional=True) or "",
        label=label, judge=_field(row, "judge", text, where, optional=True),
    )


def read_records(path: str | Path, labelled: bool = False, with_documents: bool = False) -> list[SearchRecord]:
    """Every record of a file, validated (errors name the file, the row and the field). ``labelled``: each
    record must carry a label; ``with_documents``: each must hold at least one document."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"records file {str(p)!r} does not exist")
    out = []
    with p.open("rb") as fh:
        for n, row in iter_rows(fh, p, DataError):
            record = record_from_json(row, f"{p}: row {n}")
            if labelled and record.label is None:
                raise DataError(f"{p}: row {n}: missing field 'label' (label the searches with `zerosearch sim label`)")
            if with_documents and not record.documents:
                raise DataError(f"{p}: row {n}, field 'documents': empty; a page without documents cannot be a "
                                f"simulator's training target")
            out.append(record)
    return out


def write_records(records: Sequence[SearchRecord], path: str | Path) -> Path:
    """Write a whole file at once, atomically (a temporary file renamed into place)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(p)
    return p


def _complete_lines(path: Path) -> int:
    """Byte length of the file up to its last newline (a truncated last line is not counted)."""
    data = path.read_bytes()
    return data.rfind(b"\n") + 1


class RecordWriter:
    """Append-only record file that resumes: it knows the ids on disk and never writes one twice.

    On opening, a truncated last line (an interrupted write) is cut off; every complete line is read
    and validated, so a corrupt file fails loudly instead of being appended to.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped_partial = False
        existing: list[SearchRecord] = []
        if self.path.is_file():
            keep = _complete_lines(self.path)
            if keep < self.path.stat().st_size:
                self.dropped_partial = True
                with self.path.open("r+b") as fh:
                    fh.truncate(keep)
            existing = read_records(self.path)
        self.ids = {r.id for r in existing}
        self.per_unit: dict[str, int] = {}
        self.searches: dict[str, int] = {}
        for r in existing:
            self.per_unit[r.unit] = self.per_unit.get(r.unit, 0) + 1
            self.searches[r.unit] = r.searches
        self.resumed = len(existing)
        self.written = 0
        self._fh = self.path.open("a", encoding="utf-8")

    def unit_done(self, unit: str) -> bool:
        """Whether every search of ``unit``'s trajectory is already on disk."""
        return unit in self.searches and self.per_unit.get(unit, 0) >= self.searches[unit]

    def append(self, record: SearchRecord) -> bool:
        """Write and flush one record; False (and nothing written) if its id is already on disk."""
        if record.id in self.ids:
            return False
        self._fh.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        self._fh.flush()
        self.ids.add(record.id)
        self.per_unit[record.unit] = self.per_unit.get(record.unit, 0) + 1
        self.searches[record.unit] = record.searches
        self.written += 1
        return True

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
