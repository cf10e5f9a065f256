from __future__ import annotations

import asyncio

import pytest

from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.batcher import SearchBatcher


class Backend:
    name = "counting"

    def __init__(self, fail: bool = False, short: bool = False):
        self.batches, self.fail, self.short = [], fail, short

    def search(self, requests):
        self.batches.append([r.query for r in requests])
        if self.fail:
            raise RuntimeError("engine down at http://sim:6001")
        pages = [[Document(r.query, "", f"about {r.query} for {r.question}")] for r in requests]
        return pages[:-1] if self.short else pages


def run_concurrently(batcher, groups):
    async def main():
        return await asyncio.gather(*(batcher.search([SearchRequest(q, question=f"Q{q}") for q in g])
                                      for g in groups))
    return asyncio.run(main())


def test_concurrent_searches_share_one_backend_call_and_get_their_own_pages():
    backend = Backend()
    batcher = SearchBatcher(backend, window_s=0.01)
    pages = run_concurrently(batcher, [["a"], ["b", "c"], ["d"]])
    assert backend.batches == [["a", "b", "c", "d"]] and batcher.calls == 1
    assert [[p[0].text for p in group] for group in pages] == [
        ["about a for Qa"], ["about b for Qb", "about c for Qc"], ["about d for Qd"]]


def test_a_full_batch_goes_out_without_waiting_for_the_window():
    backend = Backend()
    batcher = SearchBatcher(backend, window_s=30.0, max_batch=2)  # the window would outlast the test
    pages = run_concurrently(batcher, [["a"], ["b"], ["c"], ["d"]])
    assert sorted(map(sorted, backend.batches)) == [["a", "b"], ["c", "d"]]
    assert [p[0][0].id for p in pages] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(("backend", "message"), [(Backend(fail=True), "engine down at http://sim:6001"),
                                                  (Backend(short=True), "answered 1 of 2 requests")])
def test_a_failed_call_fails_every_waiting_search_with_its_reason(backend, message):
    with pytest.raises(RuntimeError, match=message):
        run_concurrently(SearchBatcher(backend), [["a"], ["b"]])
