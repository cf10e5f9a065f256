"""Client of any Search-R1-style ``/retrieve`` server (Search-R1's retriever, FlashRAG, our ``server``).

One POST per batch carries every query of the batch, with ``return_scores: true``; both reply shapes
(``{"document": {...}, "score": s}`` items, or bare document objects) are read. Documents are
``{"id", "contents"}`` with ``contents`` = ``"Title"\\ntext``; ``{"id", "title", "text"}`` is read too.

Several URLs give fail-over; each batch gets a bounded number of attempts with backoff
(``net.call_with_failover``), then ``SearchError`` naming the URLs and the last error. A 4xx reply
is final at once (retrying the same request cannot help). A malformed reply counts as a failed
attempt, so another server is tried.

With ``send_extras`` the request also carries the ZeroSearch fields ``questions``, ``golden_answers``
and ``noisy`` (aligned with ``queries``), so that a ``zerosearch serve`` over a simulated backend
writes documents for the right question and kind. Plain Search-R1 servers ignore unknown fields, but
only turn it on for servers that know them.

When our server could not answer some queries it still sends their "search failed" document and an
``errors`` list; those documents are passed on as they are and counted as ``search/server_failed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx

from zerosearch_rl.config import SearchConfig
from zerosearch_rl.net import EndpointError, RetryPolicy, call_with_failover, raise_for_status, run_sync
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import CountingBackend, SearchError


class MalformedReply(ValueError):
    """A reply that does not follow the protocol (a ``ValueError``: ``net`` retries it elsewhere)."""


def _document(item: Any, where: str) -> Document:
    if not isinstance(item, dict):
        raise MalformedReply(f"{where} must be an object, got {type(item).__name__}")
    doc, score = (item["document"], item.get("score")) if "document" in item else (item, None)
    if not isinstance(doc, dict):
        raise MalformedReply(f"{where}.document must be an object, got {type(doc).__name__}")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise MalformedReply(f"{where}.score must be a number, got {score!r}")
    doc_id = str(doc.get("id", ""))
    score = None if score is None else float(score)
    if isinstance(doc.get("contents"), str):
        return Document.from_contents(doc_id, doc["contents"], score)
    if isinstance(doc.get("text"), str):
        return Document(id=doc_id, title=str(doc.get("title") or ""), text=doc["text"], score=score)
    raise MalformedReply(f"{where} has neither a 'contents' nor a 'text' string (keys: {sorted(doc)})")


def parse_reply(data: Any, n: int) -> list[list[Document]]:
    """The ``result`` of a ``/retrieve`` reply for ``n`` queries as ``Document`` lists (either shape)."""
    if not isinstance(data, dict) or not isinstance(data.get("result"), list):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MalformedReply(f"the reply must be an object with a 'result' list, got {got}")
    result = data["result"]
    if len(result) != n:
        raise MalformedReply(f"'result' holds {len(result)} lists for {n} queries")
    out = []
    for i, docs in enumerate(result):
        if not isinstance(docs, list):
            raise MalformedReply(f"result[{i}] must be a list of documents, got {type(docs).__name__}")
        out.append([_document(item, f"result[{i}][{j}]") for j, item in enumerate(docs)])
    return out


def retrieve_url(url: str) -> str:
    """Accept a base URL (``http://host:8000``) or the full endpoint (``…/retrieve``)."""
    url = url.rstrip("/")
    return url if url.endswith("/retrieve") else f"{url}/retrieve"


class RemoteBackend(CountingBackend):
    """A ``SearchBackend`` answered by Search-R1-style ``/retrieve`` servers (tried in order)."""

    name = "remote"

    def __init__(
        self,
        urls: Sequence[str],
        topk: int = 5,
        timeout_s: float = 15.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        send_extras: bool = False,
    ) -> None:
        super().__init__()
        if not urls:
            raise ValueError("the remote search backend needs at least one URL (search.urls)")
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.urls = tuple(retrieve_url(u) for u in urls)
        self.topk = topk
        self.send_extras = send_extras
        # With the extras the server's answer depends on the whole request, not just the query (caches key on it).
        self.conditional = send_extras
        self.policy = RetryPolicy(max_retries=max_retries, backoff_s=backoff_s)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)))

    @classmethod
    def from_config(cls, cfg: SearchConfig, send_extras: bool = False) -> RemoteBackend:
        return cls(cfg.urls, topk=cfg.topk, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
                   backoff_s=cfg.backoff_s, send_extras=send_extras)

    def payload(self, requests: Sequence[SearchRequest]) -> dict[str, Any]:
        """The JSON body of one ``/retrieve`` call for the whole batch."""
        body: dict[str, Any] = {"queries": [r.query for r in requests], "topk": self.topk, "return_scores": True}
        if self.send_extras:
            body["questions"] = [r.question for r in requests]
            body["golden_answers"] = [list(r.answers) for r in requests]
            body["noisy"] = [r.noisy for r in requests]
        return body

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        if not requests:
            return []
        body = self.payload(requests)
        n = len(requests)

        async def attempt(url: str) -> tuple[list[list[Document]], int]:
            # The sync client keeps its connection pool across calls; its thread keeps the loop free.
            response = await asyncio.to_thread(self._client.post, url, json=body)
            raise_for_status(response)
            try:
                data = response.json()
            except ValueError:
                raise MalformedReply(f"the reply is not JSON: {response.text[:200]!r}") from None
            errors = data.get("errors") if isinstance(data, dict) else None
            failed = sum(e is not None for e in errors) if isinstance(errors, list) else 0
            return parse_reply(data, n), failed

        self.counts["batches"] += 1
        self.counts["queries"] += n
        try:
            results, failed = run_sync(lambda: call_with_failover(self.urls, attempt, self.policy, "remote search"))
        except EndpointError as exc:
            self.counts["failures"] += 1
            raise SearchError(str(exc)) from exc
        self.counts["server_failed"] += failed
        return [docs[: self.topk] for docs in results]

    def close(self) -> None:
        self._client.close()
