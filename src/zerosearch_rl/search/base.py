"""The one interface every search engine keeps, and what engines share.

A backend is batched: a list of ``SearchRequest`` in, one list of ``Document`` per request out, in
order. Batching is what makes a simulated engine fast (all of a step's searches in flight at once)
and a local index cheap (one matrix product). Backends count what they did in ``metrics()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from zerosearch_rl.records import Document, SearchRequest


class SearchError(RuntimeError):
    """A search that could not be served (after retries), naming the engine or endpoint."""


@runtime_checkable
class SearchBackend(Protocol):
    """A search engine. ``search`` returns exactly one document list per request, in order."""

    name: str

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]: ...

    def metrics(self) -> dict[str, float]:
        """Cumulative counters since construction (queries, failures, cache hits, …)."""
        ...

    def close(self) -> None: ...


FAILED_DOCUMENT_ID = "search-failed"
#: What ZeroSearch's engines show the policy when a search failed (its batch_search and retrievers), the failure
#: document's page in the original's observation format.
NO_INFORMATION = "No information available"


def failure_document(reason: str) -> Document:
    """The single document returned instead of results when ``search.on_error: document`` is set."""
    return Document(id=FAILED_DOCUMENT_ID, title="Search failed",
                    text=f"The search engine could not answer this query ({reason}).",
                    page=NO_INFORMATION)


class CountingBackend:
    """Mixin with a ``Counter`` of metrics and a no-op ``close``."""

    name = "base"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def metrics(self) -> dict[str, float]:
        return {f"search/{k}": float(v) for k, v in self.counts.items()}

    def close(self) -> None:
        return None
