"""Real Google results through SerpAPI over plain HTTP (for data collection and evaluation).

The key comes from the environment, ``SERPAPI_API_KEY`` (SerpAPI's own name) or else ``SER_API_KEY``
(the name ZeroSearch's ``retrieve_from_google`` reads), and is never logged: SerpAPI takes it as a query
parameter, so error messages name the endpoint without its query string.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from zerosearch_rl.net import EndpointError, RetryPolicy, call_with_failover, raise_for_status, run_sync
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import CountingBackend, SearchError

SERPAPI_URL = "https://serpapi.com/search.json"
#: Environment variables holding the key, the first one set wins.
KEY_ENVS = ("SERPAPI_API_KEY", "SER_API_KEY")


def zerosearch_page(payload: dict[str, Any]) -> str:
    """The page ZeroSearch's ``retrieve_from_google`` shows the policy: ``Doc i: {title}{snippet}`` a line, over
    the organic results (title and snippet joined without a space, either may be missing; SerpAPI is asked for
    ``num`` = topk of them)."""
    texts = [f"{item.get('title', '')}{item.get('snippet', '')}" for item in payload.get("organic_results") or []]
    return "\n".join(f"Doc {i}: {t}" for i, t in enumerate(texts, start=1))


def parse_serpapi(payload: dict[str, Any], topk: int) -> list[Document]:
    """Organic results (title + snippet), preceded by the answer box when Google shows one; every document
    carries the whole page as ZeroSearch renders it (``Document.page``, see ``zerosearch_page``)."""
    docs = []
    box = payload.get("answer_box") or {}
    box_text = box.get("answer") or box.get("snippet")
    if box_text:
        docs.append(Document("answer_box", str(box.get("title", "")), str(box_text)))
    for i, item in enumerate(payload.get("organic_results") or []):
        snippet = item.get("snippet")
        if snippet:
            docs.append(Document(str(item.get("link", f"organic-{i}")), str(item.get("title", "")), str(snippet)))
    page = zerosearch_page(payload)
    return [replace(d, page=page) for d in docs[:topk]]


class SerpAPIBackend(CountingBackend):
    """One HTTP request per query, all of a batch in flight at once (up to ``concurrency``)."""

    name = "serpapi"

    def __init__(self, topk: int = 5, timeout_s: float = 30.0, retry: RetryPolicy | None = None,
                 concurrency: int = 16, url: str = SERPAPI_URL, api_key: str | None = None) -> None:
        super().__init__()
        key = api_key if api_key is not None else next(filter(None, map(os.environ.get, KEY_ENVS)), "")
        if not key:
            raise SearchError(f"search.backend=serpapi needs an API key in the environment variable "
                              f"{' or '.join(KEY_ENVS)}")
        self._key, self.url, self.topk, self.timeout_s = key, url, topk, timeout_s
        self.retry, self.concurrency = retry or RetryPolicy(), concurrency

    async def _one(self, client: httpx.AsyncClient, gate: asyncio.Semaphore, query: str) -> list[Document]:
        async def attempt(url: str) -> list[Document]:
            params: dict[str, str | int] = {"engine": "google", "q": query, "num": self.topk, "api_key": self._key}
            response = await client.get(url, params=params)
            raise_for_status(response)
            return parse_serpapi(response.json(), self.topk)

        async with gate:
            return await call_with_failover([self.url], attempt, self.retry, "serpapi", secret=self._key)

    async def _all(self, queries: list[str]) -> list[list[Document]]:
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s)) as client:
            return list(await asyncio.gather(*(self._one(client, gate, q) for q in queries)))

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        try:
            pages = run_sync(lambda: self._all([r.query for r in requests]))
        except EndpointError as exc:
            self.counts["failures"] += 1
            raise SearchError(str(exc).replace(self._key, "***")) from None
        self.counts.update(queries=len(requests), empty_results=sum(not p for p in pages))
        return pages
