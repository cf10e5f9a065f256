"""A local BM25 engine over a JSONL corpus, built with bm25s and cached on disk.

Text is tokenized by bm25s' own tokenizer: lower-cased, words of two or more characters, English
stopwords removed, no stemming (a stemmer would add PyStemmer as a dependency). The stopwords are
bm25s' ``"en"`` list, Lucene's 33 English stopwords, as in the Pyserini BM25 that Search-R1 compares
with; question words ("where", "who") are kept and left to IDF to discount. Title and text are
indexed together.

The index is built once per corpus content and saved under ``cache_location(corpus, "bm25-v1")``;
constructing the backend again loads it instead of rebuilding. The folder is written under a
temporary name and renamed into place, so a crash never leaves a half-written index to be loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import bm25s

from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import CountingBackend, SearchError
from zerosearch_rl.search.corpus import Corpus, cache_location, read_corpus

log = logging.getLogger(__name__)

# Part of the cache key: bump it whenever tokenization or scoring changes, so old indexes are not reused.
INDEX_KIND = "bm25-v1"
_STOPWORDS = "en"


def _tokenize(texts: list[str], return_ids: bool) -> bm25s.tokenization.Tokenized | list[list[str]]:
    return bm25s.tokenize(texts, lower=True, stopwords=_STOPWORDS, return_ids=return_ids, show_progress=False)


def _build(corpus: Corpus, target: Path) -> bm25s.BM25:
    """Index the corpus and save it at ``target`` atomically (temporary folder, then rename)."""
    retriever = bm25s.BM25()
    retriever.index(_tokenize([f"{d.title}\n{d.text}" for d in corpus.documents], return_ids=True),
                    show_progress=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        retriever.save(tmp, show_progress=False)
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():  # not a concurrent builder that won the race: a real failure
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return retriever


class BM25Backend(CountingBackend):
    """BM25 over a corpus file. ``built`` says whether this construction indexed (True) or loaded the cache.

    ``index_dir`` is the folder that holds cached indexes (default: the corpus's folder); each corpus
    content gets its own entry there, named after the corpus file and its fingerprint.
    """

    name = "bm25"

    def __init__(self, corpus: str | Path, topk: int = 5, index_dir: str | Path | None = None) -> None:
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        self.topk = topk
        self.corpus = read_corpus(corpus)
        self.index_path = cache_location(self.corpus, INDEX_KIND, index_dir)
        start = time.perf_counter()
        self.built = not self.index_path.is_dir()
        if self.built:
            self.retriever = _build(self.corpus, self.index_path)
        else:
            self.retriever = self._load()
        log.info("bm25: %s %d documents in %.3f s (%s)", "indexed" if self.built else "loaded",
                 len(self.corpus), time.perf_counter() - start, self.index_path)
        self.counts.update(queries=0, batches=0, empty_results=0)

    def _load(self) -> bm25s.BM25:
        try:
            retriever = bm25s.BM25.load(self.index_path)
        except (OSError, ValueError) as exc:
            raise SearchError(f"bm25: cannot load the index at {self.index_path} ({exc}); "
                              f"delete that folder to rebuild it") from exc
        if retriever.scores["num_docs"] != len(self.corpus):
            raise SearchError(f"bm25: the index at {self.index_path} holds {retriever.scores['num_docs']} documents "
                              f"but {self.corpus.path} has {len(self.corpus)}; delete that folder to rebuild it")
        return retriever

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        """All queries in one ``retrieve`` call. Queries with no indexed word get no documents."""
        vocab = self.retriever.vocab_dict
        tokens = [[t for t in q if t in vocab] for q in _tokenize([r.query for r in requests], return_ids=False)]
        asked = [i for i, q in enumerate(tokens) if q]
        pages: list[list[Document]] = [[] for _ in requests]
        if asked:
            k = min(self.topk, len(self.corpus))
            indices, scores = self.retriever.retrieve([tokens[i] for i in asked], k=k, show_progress=False)
            docs = self.corpus.documents
            for row, i in enumerate(asked):
                pages[i] = [dataclasses.replace(docs[int(j)], score=float(s))
                            for j, s in zip(indices[row], scores[row], strict=True) if s > 0]
        self.counts.update(queries=len(requests), batches=1, empty_results=sum(not p for p in pages))
        return pages
