"""A scripted engine for smoke runs and tests: instant, deterministic, and honest about its kind."""

from __future__ import annotations

from collections.abc import Sequence

from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import CountingBackend


class FakeBackend(CountingBackend):
    """Useful requests get a first document stating the gold answer; noisy ones never mention it.

    It reads the request's question and answers like a simulator does, so a smoke run exercises the
    same information flow (and a policy can learn to copy the answer from the results).
    """

    name = "fake"
    conditional = True

    def __init__(self, topk: int = 5) -> None:
        super().__init__()
        self.topk = topk

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        pages = []
        for r in requests:
            filler = [Document(f"fake-{i}", f"Result {i}", f"Text about {r.query}.") for i in range(1, self.topk + 1)]
            if not r.noisy and r.answers:
                filler[0] = Document("fake-answer", r.query, f"The answer to {r.question!r} is {r.answers[0]}.")
            pages.append(filler)
        self.counts.update(queries=len(requests), noisy=sum(r.noisy for r in requests))
        return pages
