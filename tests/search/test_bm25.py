"""BM25 over a tiny corpus: ranking, batching, empty queries, metrics, and the on-disk index cache."""

from __future__ import annotations

import bm25s
import pytest

from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search.base import SearchBackend, SearchError
from zerosearch_rl.search.bm25 import BM25Backend

from .test_corpus import PEOPLE, write_corpus

DISTINCTIVE = [
    ("where was Ada Kowalski born", "ada"),
    ("which town is famous for salt mines", "brindlemoor"),
    ("painter of lighthouses", "tomas"),
    ("caves where cheese is aged", "ostrava"),
    ("who composed symphonies for the violin", "lena"),
    ("clocks that chime backwards", "oskar"),
    ("herons nesting on a church roof", "fenwater"),
    ("fencing medal winner", "mira"),
    ("purple carrots", "dunmore"),
    ("who trained falcons", "ivo"),
    ("dried seaweed racks", "kelpsby"),
]


@pytest.fixture
def corpus_path(tmp_path):
    # Two rows in the Search-R1 form: their titles must be searchable too.
    return write_corpus(tmp_path / "people.jsonl", contents_form=frozenset({"ivo", "quillon"}))


def ask(*queries: str) -> list[SearchRequest]:
    return [SearchRequest(query=q) for q in queries]


def test_is_a_search_backend(corpus_path):
    backend = BM25Backend(corpus_path)
    assert isinstance(backend, SearchBackend)
    assert backend.name == "bm25"


@pytest.mark.parametrize(("query", "expected"), DISTINCTIVE)
def test_distinctive_query_ranks_its_document_first(corpus_path, query, expected):
    (page,) = BM25Backend(corpus_path, topk=3).search(ask(query))
    assert page[0].id == expected
    assert page[0].score is not None and page[0].score > 0


def test_titles_are_indexed_in_both_row_forms(tmp_path):
    path = tmp_path / "titles.jsonl"
    path.write_text(
        '{"id": "abbey", "contents": "\\"Wexford Abbey\\"\\nA ruined chapel on a cliff."}\n'
        '{"id": "heath", "title": "Gorsemoor", "text": "A heath with wild ponies."}\n'
        '{"id": "other", "title": "Elsewhere", "text": "A chapel and a heath with ponies."}\n'
    )
    backend = BM25Backend(path)
    wexford, gorsemoor = backend.search(ask("Wexford", "Gorsemoor"))
    assert [d.id for d in wexford] == ["abbey"]
    assert (wexford[0].title, wexford[0].text) == ("Wexford Abbey", "A ruined chapel on a cliff.")
    assert [d.id for d in gorsemoor] == ["heath"]


def test_batch_gives_one_list_per_request_in_order(corpus_path, monkeypatch):
    backend = BM25Backend(corpus_path, topk=3)
    queries = [q for q, _ in DISTINCTIVE]
    calls = []
    original = bm25s.BM25.retrieve

    def counting_retrieve(self, *args, **kwargs):
        calls.append(len(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(bm25s.BM25, "retrieve", counting_retrieve)
    batch = backend.search(ask(*queries))
    assert calls == [len(queries)]  # the whole batch in one retrieve call
    assert [page[0].id for page in batch] == [expected for _, expected in DISTINCTIVE]
    one_by_one = [backend.search(ask(q))[0] for q in queries]
    assert batch == one_by_one


def test_topk_is_respected_and_scores_are_best_first(corpus_path):
    # "born" is in six documents: enough to fill any topk up to 6.
    for topk in (1, 3, 6):
        (page,) = BM25Backend(corpus_path, topk=topk).search(ask("born"))
        assert len(page) == topk
        scores = [d.score for d in page]
        assert scores == sorted(scores, reverse=True)
    (page,) = BM25Backend(corpus_path, topk=50).search(ask("born"))
    assert {d.id for d in page} == {"ada", "tomas", "lena", "oskar", "mira", "ivo"}  # no zero-score filler
    with pytest.raises(ValueError, match="topk"):
        BM25Backend(corpus_path, topk=0)


def test_empty_and_unmatched_queries_return_no_documents(corpus_path, monkeypatch):
    backend = BM25Backend(corpus_path)
    # "it was the" holds only stopwords (Lucene's English list, which keeps "where", "who", …).
    pages = backend.search(ask("", "   ", "it was the", "xylophone zeppelin", "purple carrots", "?!"))
    assert [len(p) for p in pages[:4]] == [0, 0, 0, 0]
    assert pages[4][0].id == "dunmore"
    assert pages[5] == []
    assert backend.search([]) == []

    def no_retrieving(*args, **kwargs):
        raise AssertionError("retrieve called although no query has an indexed word")

    monkeypatch.setattr(bm25s.BM25, "retrieve", no_retrieving)
    assert backend.search(ask("", "it was the", "xylophone zeppelin")) == [[], [], []]


def test_metrics_count_queries_batches_and_empty_results(corpus_path):
    backend = BM25Backend(corpus_path)
    assert backend.metrics() == {"search/queries": 0.0, "search/batches": 0.0, "search/empty_results": 0.0}
    backend.search(ask("purple carrots", "", "falcons"))
    backend.search(ask("nothing matches zzzz"))
    assert backend.metrics() == {"search/queries": 4.0, "search/batches": 2.0, "search/empty_results": 2.0}


def test_second_construction_loads_the_cached_index_without_building(corpus_path, monkeypatch):
    first = BM25Backend(corpus_path)
    assert first.built
    assert first.index_path.parent == corpus_path.parent
    assert first.index_path.name == f"people.jsonl.bm25-v1-{first.corpus.fingerprint}"
    assert (first.index_path / "params.index.json").is_file()
    stamps = {f.name: f.stat().st_mtime_ns for f in first.index_path.iterdir()}

    def no_building(*args, **kwargs):
        raise AssertionError("the index was rebuilt")

    monkeypatch.setattr(bm25s.BM25, "index", no_building)
    second = BM25Backend(corpus_path)
    assert not second.built
    assert {f.name: f.stat().st_mtime_ns for f in second.index_path.iterdir()} == stamps
    queries = ask(*(q for q, _ in DISTINCTIVE))
    assert second.search(queries) == first.search(queries)
    leftovers = [p.name for p in corpus_path.parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_a_changed_corpus_invalidates_the_cache(corpus_path):
    old = BM25Backend(corpus_path)
    changed = [dict(PEOPLE[0], text="Ada Kowalski was born in Zanzibrook."), *PEOPLE[1:]]
    write_corpus(corpus_path, changed)
    new = BM25Backend(corpus_path)
    assert new.built
    assert new.index_path != old.index_path
    (page,) = new.search(ask("Zanzibrook"))
    assert [d.id for d in page] == ["ada"]
    assert page[0].text == "Ada Kowalski was born in Zanzibrook."
    assert new.search(ask("cartographer")) == [[]]


def test_index_dir_holds_the_cache(corpus_path, tmp_path):
    cache = tmp_path / "indexes"
    backend = BM25Backend(corpus_path, index_dir=cache)
    assert backend.index_path.parent == cache
    assert backend.index_path.is_dir()
    assert [p.name for p in corpus_path.parent.iterdir() if "bm25" in p.name] == []
    assert not BM25Backend(corpus_path, index_dir=cache).built


def test_a_damaged_index_is_a_clear_error(corpus_path):
    backend = BM25Backend(corpus_path)
    (backend.index_path / "params.index.json").unlink()
    with pytest.raises(SearchError, match="delete that folder") as info:
        BM25Backend(corpus_path)
    assert str(backend.index_path) in str(info.value)


def test_an_index_of_another_corpus_is_a_clear_error(corpus_path, tmp_path):
    backend = BM25Backend(corpus_path)
    other = BM25Backend(write_corpus(tmp_path / "few.jsonl", PEOPLE[:3]))
    for f in other.index_path.iterdir():
        f.replace(backend.index_path / f.name)
    with pytest.raises(SearchError, match=r"holds 3 documents but .*people.jsonl has 12"):
        BM25Backend(corpus_path)
