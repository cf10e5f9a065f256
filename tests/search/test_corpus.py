"""Corpus files: both row forms, clear errors for bad rows, and a fingerprint that follows the content.

``PEOPLE`` and ``write_corpus`` are shared by the BM25 and dense tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zerosearch_rl.search.corpus import CorpusError, cache_location, corpus_fingerprint, read_corpus

# A dozen fictional people and towns; each has words found in no other document.
PEOPLE: list[dict[str, str]] = [
    {"id": "ada", "title": "Ada Kowalski", "text": "Ada Kowalski was born in Brindlemoor and became a cartographer "
                                                   "who mapped the northern fjords."},
    {"id": "brindlemoor", "title": "Brindlemoor", "text": "Brindlemoor is a river town famous for its salt mines "
                                                         "and a bridge of grey stone."},
    {"id": "tomas", "title": "Tomas Vey", "text": "Tomas Vey was a painter born in Ostrava Minor who painted "
                                                  "lighthouses in oil."},
    {"id": "ostrava", "title": "Ostrava Minor", "text": "Ostrava Minor is a mountain village where cheese is aged "
                                                        "in caves."},
    {"id": "lena", "title": "Lena Marsh", "text": "Lena Marsh was born in Quillon and composed three symphonies "
                                                  "for the violin."},
    {"id": "quillon", "title": "Quillon", "text": "Quillon is a harbour city whose lanterns are lit every winter "
                                                  "solstice."},
    {"id": "oskar", "title": "Oskar Heddle", "text": "Oskar Heddle was born in Fenwater and built clocks that "
                                                     "chime backwards."},
    {"id": "fenwater", "title": "Fenwater", "text": "Fenwater is a marsh town where herons nest on the church "
                                                    "roof."},
    {"id": "mira", "title": "Mira Calloway", "text": "Mira Calloway was born in Dunmore Pike and won a medal for "
                                                     "fencing."},
    {"id": "dunmore", "title": "Dunmore Pike", "text": "Dunmore Pike is a hill town that grows purple carrots in "
                                                       "terraces."},
    {"id": "ivo", "title": "Ivo Sarrant", "text": "Ivo Sarrant was born in Kelpsby and trained falcons for the "
                                                  "royal court."},
    {"id": "kelpsby", "title": "Kelpsby", "text": "Kelpsby is a seaside hamlet where seaweed is dried on long "
                                                  "wooden racks."},
]


def write_corpus(path: Path, rows: list[dict[str, str]] = PEOPLE, contents_form: frozenset[str] = frozenset()) -> Path:
    """Write ``rows`` as JSONL; ids in ``contents_form`` use the Search-R1 ``{id, contents}`` form."""
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            if row["id"] in contents_form:
                row = {"id": row["id"], "contents": f'"{row["title"]}"\n{row["text"]}'}
            fh.write(json.dumps(row) + "\n")
    return path


def test_reads_both_row_forms_in_file_order(tmp_path):
    path = write_corpus(tmp_path / "people.jsonl", contents_form=frozenset({"tomas", "quillon"}))
    assert "contents" in path.read_text().splitlines()[2]  # the file really mixes the two forms
    corpus = read_corpus(path)
    assert [d.id for d in corpus.documents] == [r["id"] for r in PEOPLE]
    assert [(d.title, d.text) for d in corpus.documents] == [(r["title"], r["text"]) for r in PEOPLE]
    assert len(corpus) == 12
    assert all(d.score is None for d in corpus.documents)


def test_integer_ids_missing_titles_blank_lines_and_extra_keys(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": 7, "text": "No title here.", "url": "x"}\n\n{"id": "b", "contents": "Just text."}\n')
    docs = read_corpus(path).documents
    assert [(d.id, d.title, d.text) for d in docs] == [("7", "", "No title here."), ("b", "", "Just text.")]


@pytest.mark.parametrize(("lines", "row", "field"), [
    (['{"id": "a", "title": "A"}'], 1, "'text'"),
    (['{"id": "a", "text": "ok"}', '{"id": "b", "text": "   "}'], 2, "'text'"),
    (['{"id": "a", "text": 3}'], 1, "'text'"),
    (['{"id": "a", "text": "ok", "title": ["x"]}'], 1, "'title'"),
    (['{"text": "no id"}'], 1, "'id'"),
    (['{"id": true, "text": "bool id"}'], 1, "'id'"),
    (['{"id": "a", "contents": "\\"Title only\\"\\n"}'], 1, "'contents'"),
    (['{"id": "a", "text": "ok"}', "", '{"id": "b", "text": "ok"}', '{"id": "a", "text": "again"}'], 4, "'id'"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, lines, row, field):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError) as info:
        read_corpus(path)
    message = str(info.value)
    assert str(path) in message
    assert f"row {row}" in message
    assert field in message


def test_duplicate_id_names_both_rows(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "x", "text": "one"}\n{"id": "y", "text": "two"}\n{"id": "x", "text": "three"}\n')
    with pytest.raises(CorpusError, match=r"row 3, field 'id': duplicate id 'x' \(first used in row 1\)"):
        read_corpus(path)


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"id": "a", "text": "ok"}\n{"id": "b", "text": oops}\n', r"row 2: not valid JSON"),
    (b'{"id": "a", "text": "ok"}\n["a", "list"]\n', r"row 2: expected a JSON object \(one per line\), got list"),
    (b'{"id": "a", "text": "caf\xe9"}\n', r"row 1: not valid UTF-8"),
])
def test_unreadable_rows_name_file_and_row(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=expected) as info:
        read_corpus(path)
    assert str(path) in str(info.value)


def test_missing_and_empty_files_are_errors(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(CorpusError, match="does not exist"):
        corpus_fingerprint(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError, match="no documents"):
        read_corpus(empty)


def test_fingerprint_follows_content_not_path(tmp_path):
    a = write_corpus(tmp_path / "a.jsonl")
    b = write_corpus(tmp_path / "b.jsonl")
    assert corpus_fingerprint(a) == corpus_fingerprint(b)
    assert read_corpus(a).fingerprint == corpus_fingerprint(a)  # one pass or two, the same key
    changed = [dict(PEOPLE[0], text=PEOPLE[0]["text"] + "!"), *PEOPLE[1:]]
    write_corpus(b, changed)
    assert corpus_fingerprint(b) != corpus_fingerprint(a)
    assert read_corpus(b).fingerprint == corpus_fingerprint(b)


def test_fingerprint_of_a_file_larger_than_one_read(tmp_path):
    path = tmp_path / "big.jsonl"
    row = json.dumps({"id": "x", "text": "y" * 1000}) + "\n"
    path.write_text(row * 3000)  # about 3 MB: several chunks
    other = tmp_path / "big2.jsonl"
    other.write_text(row * 2999 + row.replace("yy", "yz", 1))
    assert corpus_fingerprint(path) != corpus_fingerprint(other)
    assert len(corpus_fingerprint(path)) == 32


def test_cache_location_is_beside_the_corpus_and_named_after_file_and_fingerprint(tmp_path):
    corpus = read_corpus(write_corpus(tmp_path / "people.jsonl"))
    loc = cache_location(corpus, "bm25-v1")
    assert loc == tmp_path / f"people.jsonl.bm25-v1-{corpus.fingerprint}"
    assert cache_location(corpus, "bm25-v1", tmp_path / "cache").parent == tmp_path / "cache"
    assert cache_location(corpus, "bm25-v1", "") == loc  # the config's "" means the default
