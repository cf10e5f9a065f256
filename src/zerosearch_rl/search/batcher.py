"""One batched backend call for many concurrent one-trajectory searches.

Async drivers (veRL's agent loop runs every trajectory as its own coroutine) search one request at a
time, while our engines are built for batches: a simulator keeps all of a batch's requests in flight at
once, a local index answers a batch with one matrix product. ``SearchBatcher`` gathers the requests that
arrive within ``window_s`` of the first one (or until ``max_batch``) and sends them to the backend in one
call, in a worker thread so the event loop keeps generating meanwhile. A failed call fails every request
of its batch with the backend's own error (``search.on_error=document`` turns failures into documents).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import SearchBackend


class SearchBatcher:
    """Awaitable front of a batched ``SearchBackend``; use one per event loop."""

    def __init__(self, backend: SearchBackend, window_s: float = 0.005, max_batch: int = 512) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError(f"need window_s >= 0 and max_batch >= 1, got {window_s} and {max_batch}")
        self.backend, self.window_s, self.max_batch = backend, window_s, max_batch
        self._pending: list[tuple[SearchRequest, asyncio.Future[list[Document]]]] = []
        self._timer: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()  # held so the loop cannot garbage-collect them
        self.calls = 0  # backend calls made, for metrics and tests

    async def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        """The documents for ``requests``, in order, once their batch has been answered."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in requests]
        self._pending.extend(zip(requests, futures, strict=True))
        if len(self._pending) >= self.max_batch:
            task = loop.create_task(self._send(self._take()))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        elif self._timer is None:
            self._timer = loop.create_task(self._send_later())
        return list(await asyncio.gather(*futures))

    def _take(self) -> list[tuple[SearchRequest, asyncio.Future[list[Document]]]]:
        batch, self._pending = self._pending, []
        return batch

    async def _send_later(self) -> None:
        await asyncio.sleep(self.window_s)
        self._timer = None
        await self._send(self._take())

    async def _send(self, batch: list[tuple[SearchRequest, asyncio.Future[list[Document]]]]) -> None:
        if not batch:
            return
        self.calls += 1
        try:
            pages = await asyncio.to_thread(self.backend.search, [r for r, _ in batch])
            if len(pages) != len(batch):
                raise RuntimeError(f"search backend {self.backend.name!r} answered {len(pages)} of "
                                   f"{len(batch)} requests")
        except Exception as exc:  # every waiting episode gets the backend's error, none hangs
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), page in zip(batch, pages, strict=True):
            if not future.done():
                future.set_result(list(page))
