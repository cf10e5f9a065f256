"""Retrieval corpora: JSONL files of documents, read and checked, with a content fingerprint.

Two row forms are accepted (one per line, blank lines ignored):

- ``{"id", "title", "text"}`` — ``title`` may be missing or empty;
- ``{"id", "contents"}`` — the Search-R1 / FlashRAG form, ``contents`` being ``"\\"Title\\"\\ntext"``.

A row with a ``text`` field is read in the first form (any ``contents`` is then ignored). Other keys
are allowed and ignored. A bad row raises ``CorpusError`` naming the file, the row (1-based line) and
the field; a repeated id is an error naming both rows (docs/design.md, §Bad input gets a clear error).

The fingerprint is a hash of the file's bytes: built indexes are cached under it, so an edited corpus
can never be served by a stale index. Light module: no numpy, no torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerosearch_rl.jsonl import iter_rows
from zerosearch_rl.records import Document

_CHUNK = 1 << 20


class CorpusError(ValueError):
    """A corpus file or row that cannot be used, with a message naming the file, row and field."""


@dataclass(frozen=True)
class Corpus:
    """The documents of one file, in file order, and the fingerprint of the bytes they were read from."""

    path: Path
    documents: tuple[Document, ...]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.documents)


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=16)


def corpus_fingerprint(path: str | Path) -> str:
    """Hex blake2b digest of the file's bytes, read in chunks (corpora can be many gigabytes)."""
    p = _existing(path)
    h = _hasher()
    with p.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise CorpusError(f"corpus file {str(p)!r} does not exist")
    return p


def _string(row: dict[str, Any], name: str, where: str, required: bool) -> str:
    """The field's value, unstripped (``contents`` needs its line break), checked to be a string."""
    value = row.get(name, "")
    if not isinstance(value, str):
        raise CorpusError(f"{where}, field {name!r}: expected a string, got {type(value).__name__} {value!r}")
    if required and not value.strip():
        raise CorpusError(f"{where}, field {name!r}: expected non-empty text, got {value!r}")
    return value


def _document(row: dict[str, Any], where: str) -> Document:
    if "id" not in row:
        raise CorpusError(f"{where}: missing field 'id'")
    rid = row["id"]
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        raise CorpusError(f"{where}, field 'id': expected a non-empty string or integer, got {rid!r}")
    if "text" in row:
        return Document(id=str(rid), title=_string(row, "title", where, required=False).strip(),
                        text=_string(row, "text", where, required=True).strip())
    if "contents" in row:
        doc = Document.from_contents(str(rid), _string(row, "contents", where, required=True))
        if not doc.text:
            raise CorpusError(f"{where}, field 'contents': a title line but no text after it")
        return doc
    raise CorpusError(f"{where}: missing field 'text' (or 'contents' in the Search-R1 form)")


def read_corpus(path: str | Path) -> Corpus:
    """Read and check every row; the fingerprint is computed from the very bytes that were parsed."""
    p = _existing(path)
    h = _hasher()

    def hashed(fh: Iterable[bytes]) -> Iterable[bytes]:
        for raw in fh:
            h.update(raw)
            yield raw

    docs: list[Document] = []
    first_row: dict[str, int] = {}
    with p.open("rb") as fh:
        for line_no, row in iter_rows(hashed(fh), p, CorpusError):
            doc = _document(row, f"{p}: row {line_no}")
            if doc.id in first_row:
                raise CorpusError(f"{p}: row {line_no}, field 'id': duplicate id {doc.id!r} "
                                  f"(first used in row {first_row[doc.id]}); ids must be unique")
            first_row[doc.id] = line_no
            docs.append(doc)
    if not docs:
        raise CorpusError(f"{p}: the corpus holds no documents")
    return Corpus(path=p, documents=tuple(docs), fingerprint=h.hexdigest())


def cache_location(corpus: Corpus, kind: str, cache_dir: str | Path | None = None) -> Path:
    """Where an index of ``kind`` built from ``corpus`` is cached: named after the file and its fingerprint.

    ``cache_dir`` defaults to the corpus's own folder. The fingerprint in the name means an edited
    corpus gets a new entry rather than a stale one.
    """
    root = Path(cache_dir) if cache_dir else corpus.path.parent
    return root / f"{corpus.path.name}.{kind}-{corpus.fingerprint}"
