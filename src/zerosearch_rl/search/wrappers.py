"""Backends built from other backends: a result cache, a real/simulated mixture, soft failure."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from zerosearch_rl.curriculum import unit_draw
from zerosearch_rl.net import EndpointError
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import (
    FAILED_DOCUMENT_ID,
    CountingBackend,
    SearchBackend,
    SearchError,
    failure_document,
)


def cache_key(backend: SearchBackend, request: SearchRequest) -> str:
    """A real engine's results depend on the query only; a simulated one's on the whole request."""
    if getattr(backend, "conditional", False):
        parts: tuple[object, ...] = (request.query, request.noisy, request.question, list(request.answers))
    else:
        parts = (request.query,)
    return json.dumps([backend.name, *parts], ensure_ascii=False)


class CachedBackend(CountingBackend):
    """Serves repeated searches from memory, or from a SQLite file that survives restarts."""

    def __init__(self, inner: SearchBackend, path: str | Path | None = None) -> None:
        super().__init__()
        self.inner, self.name = inner, inner.name
        self.conditional = getattr(inner, "conditional", False)
        self._memory: dict[str, list[Document]] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, docs TEXT NOT NULL)")

    def _get(self, key: str) -> list[Document] | None:
        if self._db is None:
            return self._memory.get(key)
        row = self._db.execute("SELECT docs FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else [Document(**d) for d in json.loads(row[0])]

    def _put(self, key: str, docs: list[Document]) -> None:
        if self._db is None:
            self._memory[key] = docs
            return
        rows = json.dumps([d.__dict__ for d in docs], ensure_ascii=False)
        self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (key, rows))
        self._db.commit()

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        keys = [cache_key(self.inner, r) for r in requests]
        first: dict[str, SearchRequest] = {}
        for k, r in zip(keys, requests, strict=True):
            first.setdefault(k, r)
        with self._lock:
            found = {k: self._get(k) for k in first}
        missing = [k for k, v in found.items() if v is None]
        if missing:
            fresh = self.inner.search([first[k] for k in missing])
            with self._lock:
                for k, docs in zip(missing, fresh, strict=True):
                    if not any(d.id == FAILED_DOCUMENT_ID for d in docs):  # never cache a failure
                        self._put(k, docs)
                    found[k] = docs
        self.counts.update(queries=len(requests), cache_misses=len(missing), cache_hits=len(requests) - len(missing))
        return [list(found[k] or []) for k in keys]

    def metrics(self) -> dict[str, float]:
        out = {**self.inner.metrics(), **super().metrics()}
        if self.counts["queries"]:
            out["search/cache_hit_rate"] = self.counts["cache_hits"] / self.counts["queries"]
        return out

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        self.inner.close()


class MixtureBackend(CountingBackend):
    """Sends a share of searches to a real engine and the rest to a simulator.

    Which engine serves a search is a pure draw on (seed, sample id, turn, query), like the noise
    decision: reruns route identically. Each engine gets one batched call per step.
    """

    def __init__(self, real: SearchBackend, simulated: SearchBackend, real_share: float, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= real_share <= 1.0:
            raise ValueError(f"real_share must be in [0, 1], got {real_share}")
        self.real, self.simulated, self.real_share, self.seed = real, simulated, real_share, seed
        self.name, self.conditional = "mixture", True

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        to_real = [unit_draw("mixture", self.seed, r.sample_id, r.turn, r.query) < self.real_share for r in requests]
        real_idx = [i for i, flag in enumerate(to_real) if flag]
        sim_idx = [i for i, flag in enumerate(to_real) if not flag]
        out: list[list[Document]] = [[] for _ in requests]
        for backend, idx in ((self.real, real_idx), (self.simulated, sim_idx)):
            if idx:
                for i, docs in zip(idx, backend.search([requests[i] for i in idx]), strict=True):
                    out[i] = docs
        self.counts.update(queries=len(requests), real=len(real_idx), simulated=len(sim_idx))
        return out

    def metrics(self) -> dict[str, float]:
        return {**self.real.metrics(), **self.simulated.metrics(), **super().metrics()}

    def close(self) -> None:
        self.real.close()
        self.simulated.close()


class FailSoftBackend(CountingBackend):
    """``search.on_error: document``: a batch the engine could not serve gets one failure document per
    request (counted) instead of stopping training."""

    def __init__(self, inner: SearchBackend) -> None:
        super().__init__()
        self.inner, self.name = inner, inner.name
        self.conditional = getattr(inner, "conditional", False)

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        try:
            return self.inner.search(requests)
        except (SearchError, EndpointError) as exc:
            self.counts["failed_queries"] += len(requests)
            return [[failure_document(str(exc))] for _ in requests]

    def metrics(self) -> dict[str, float]:
        return {**self.inner.metrics(), **super().metrics()}

    def close(self) -> None:
        self.inner.close()
