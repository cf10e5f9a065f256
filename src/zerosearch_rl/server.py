"""HTTP search service over any ``SearchBackend``, speaking the Search-R1 ``/retrieve`` protocol.

``POST /retrieve`` takes ``{"queries": [str], "topk": int, "return_scores": bool}`` and answers
``{"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}`` (with scores) or
``{"result": [[{"id", "contents"}, ...], ...]}`` (without), one list per query, at most ``topk`` long,
so Search-R1, veRL's search tool and ``search.remote.RemoteBackend`` can all use it. ``contents`` is
``Document.contents``: ``"Title"`` on the first line, then the text, as FlashRAG's wiki-18 rows, so
Search-R1's client (``_passages2string``) shows a simulated document as ``Doc i(Title: "T") text``
exactly as a real one (a document without a title is its text alone). As in Search-R1's own server,
``topk`` (absent or null) defaults to ``serve.default_topk`` (3, Search-R1's ``--topk`` default) and
``return_scores`` to false; unlike it, ``topk: 0`` is refused, not read as absent. The backend decides
how many documents it has (``search.topk``): ``topk`` only truncates. A document without a score is
sent with score 0.0.

ZeroSearch's own wiki client (``retrieve_from_wiki`` in its ``llm_agent/generation.py``) posts one
query as ``{"query": str, "top_k": int}`` and reads the reply as a list of ``{"text": str}``: a body
with ``query`` and no ``queries`` gets that form, ``[{"id", "text"}, ...]``, where ``text`` is
``(Title: T) text`` (``simulator_sft.records.page_entry``), so the client's ``Doc i: {text}`` lines are
the simulator's own page lines. ``top_k`` defaults as ``topk``; only these two fields are accepted, the
noise kind is drawn as for a Search-R1 request that says nothing, and a failed query is answered with
the failure document alone (the list has no room for ``errors``). Serve it on ``serve.port=6002``, the
port that client posts to.

ZeroSearch extras (optional; every list is aligned with ``queries``): ``questions`` and
``golden_answers`` reach the simulator as ``SearchRequest.question``/``answers``; ``noisy`` sets each
query's kind; otherwise the kind is drawn with ``curriculum.is_noisy(serve.seed, step, sample id,
turn, p)`` where ``p`` is the request's ``noise_probability`` or ``serve.noise_probability``, the
sample id is ``sample_ids[i]`` or else the query's number among all queries this server has received
(0, 1, 2, … in arrival order: a client that sends one query per request, like veRL's search tool, still
gets independent draws), and ``step``/``turns`` default to 0. Send ``sample_ids`` and ``step`` for the
curriculum's reproducible per-sample draws.
Unknown fields are refused (a misspelt ``golden_answer`` must not silently drop the answers).

Bad input: malformed JSON -> 400; a wrong field -> 422; more than ``serve.max_queries`` queries
-> 413. The body is always ``{"detail": "<which field, what was expected>"}``.

Per-query failures: one bad query must not fail its neighbours. If the batched ``backend.search``
raises (or returns something that is not one ``Document`` list per query) the batch is retried one
query at a time. A query that still fails gets HTTP 200 all the same, with ``result[i]`` holding the
single ``search.base.failure_document`` ("Search failed", id ``search-failed``, score 0.0), and the
reply gains ``"errors"``: a list aligned with ``queries``, ``null`` for answered queries and the
reason for failed ones (absent when every query was answered, so a clean reply is exactly the
protocol). Why not a 5xx: Search-R1 clients read ``result`` and nothing else, so a 5xx would throw
away the neighbours' answers; the failure document tells the policy the search failed, and
``errors``, ``/stats`` and ``/metrics`` tell the operator.

``GET /health``, ``GET /stats`` (JSON) and ``GET /metrics`` (Prometheus text) report on ``POST
/retrieve``: requests, queries, 4xx/5xx responses, failed queries, latency, and ``backend.metrics()``.

The backend's ``search`` is synchronous and runs in Starlette's thread pool (never on the event
loop), so several requests are served at once: the backend must be thread-safe.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from zerosearch_rl.config import ServeConfig
from zerosearch_rl.curriculum import is_noisy
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import SearchBackend, failure_document
from zerosearch_rl.simulator_sft.records import page_entry

log = logging.getLogger(__name__)

LATENCY_WINDOW = 1024
FIELDS = ("queries", "topk", "return_scores", "questions", "golden_answers", "noisy", "noise_probability",
          "step", "sample_ids", "turns")
WIKI_FIELDS = ("query", "top_k")


class RequestError(ValueError):
    """A request the server refuses: ``status`` is the HTTP code, the message names the field."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Retrieval:
    """A validated ``/retrieve`` request."""

    requests: list[SearchRequest]
    topk: int
    return_scores: bool
    wiki: bool = False  # ZeroSearch's wiki form: one query in, a bare list of {"id", "text"} out


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _aligned(body: dict[str, Any], name: str, n: int, ok: Callable[[Any], bool], expected: str) -> list[Any] | None:
    """The optional list field ``name``: absent/null -> None, else ``n`` items each passing ``ok``."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise RequestError(f"'{name}' must be a list of {expected} aligned with 'queries', got {_kind(value)}")
    if len(value) != n:
        raise RequestError(f"'{name}' holds {len(value)} items for {n} queries; it must be aligned with 'queries'")
    for i, item in enumerate(value):
        if not ok(item):
            raise RequestError(f"{name}[{i}] must be {expected}, got {_kind(item)} {_show(item)}")
    return value


def _topk(body: dict[str, Any], name: str, cfg: ServeConfig) -> int:
    topk = cfg.default_topk if body.get(name) is None else body[name]
    if not _is_int(topk) or topk < 1:
        raise RequestError(f"'{name}' must be an integer >= 1, got {_show(topk)}")
    return int(topk)


def _parse_wiki(body: dict[str, Any], cfg: ServeConfig, first_query: int) -> Retrieval:
    """ZeroSearch's wiki form ``{"query", "top_k"}``, as the one-query Search-R1 request it stands for."""
    unknown = sorted(set(body) - set(WIKI_FIELDS))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(repr, unknown))} in ZeroSearch's wiki form; valid: "
                           f"{', '.join(WIKI_FIELDS)} (or send 'queries': {', '.join(FIELDS)})")
    if not isinstance(body["query"], str):
        raise RequestError(f"'query' must be a string, got {_kind(body['query'])}")
    job = parse_retrieve({"queries": [body["query"]], "topk": _topk(body, "top_k", cfg)}, cfg, first_query)
    return replace(job, wiki=True)


def parse_retrieve(body: Any, cfg: ServeConfig, first_query: int = 0) -> Retrieval:
    """Validate a decoded ``/retrieve`` body and build one ``SearchRequest`` per query (see module doc);
    ``first_query`` is the number of queries received before this request (the default sample ids)."""
    if isinstance(body, dict) and "query" in body and "queries" not in body:
        return _parse_wiki(body, cfg, first_query)
    if not isinstance(body, dict):
        raise RequestError(f"the body must be a JSON object with 'queries', 'topk', 'return_scores'; got {_kind(body)}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(map(repr, unknown))}; valid: {', '.join(FIELDS)}")
    queries = body.get("queries")
    if queries is None:
        raise RequestError("missing field 'queries' (a list of query strings)")
    if not isinstance(queries, list):
        raise RequestError(f"'queries' must be a list of strings, got {_kind(queries)}")
    n = len(queries)
    if n > cfg.max_queries:
        raise RequestError(f"'queries' holds {n} queries; this server accepts at most {cfg.max_queries} per "
                           f"request (serve.max_queries): split the batch", status=413)
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise RequestError(f"queries[{i}] must be a string, got {_kind(q)}")
    topk = _topk(body, "topk", cfg)
    return_scores = False if body.get("return_scores") is None else body["return_scores"]
    if not isinstance(return_scores, bool):
        raise RequestError(f"'return_scores' must be true or false, got {_show(return_scores)}")

    questions = _aligned(body, "questions", n, lambda x: isinstance(x, str), "a string")
    answers = _aligned(body, "golden_answers", n,
                       lambda x: isinstance(x, list) and all(isinstance(a, str) for a in x), "a list of strings")
    noisy = _aligned(body, "noisy", n, lambda x: isinstance(x, bool), "true or false")
    sample_ids = _aligned(body, "sample_ids", n, lambda x: isinstance(x, str), "a string")
    turns = _aligned(body, "turns", n, lambda x: _is_int(x) and x >= 0, "an integer >= 0")
    p = body.get("noise_probability")
    if p is not None:
        if noisy is not None:
            raise RequestError("give either 'noisy' (explicit kinds) or 'noise_probability' (drawn kinds), not both")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise RequestError(f"'noise_probability' must be a number in [0, 1], got {_show(p)}")
    step = body.get("step")
    if step is not None and (not _is_int(step) or step < 0):
        raise RequestError(f"'step' must be an integer >= 0, got {_show(step)}")

    if noisy is None:
        prob = cfg.noise_probability if p is None else float(p)
        noisy = [is_noisy(cfg.seed, step or 0, sample_ids[i] if sample_ids else first_query + i,
                          turns[i] if turns else 0, prob)
                 for i in range(n)]
    requests = [
        SearchRequest(query=q, question=questions[i] if questions else "",
                      answers=tuple(answers[i]) if answers else (), noisy=noisy[i],
                      sample_id=sample_ids[i] if sample_ids else "", turn=turns[i] if turns else 0)
        for i, q in enumerate(queries)
    ]
    return Retrieval(requests, topk, return_scores)


def _render(doc: Document, job: Retrieval) -> dict[str, Any]:
    if job.wiki:
        return {"id": str(doc.id), "text": page_entry(doc)}
    item = {"id": str(doc.id), "contents": doc.contents}
    if not job.return_scores:
        return item
    score = 0.0 if doc.score is None else float(doc.score)
    if not math.isfinite(score):  # JSON has no NaN: fail this query here, not the whole reply later
        raise ValueError(f"document {doc.id!r} has score {score}")
    return {"document": item, "score": score}


def _render_batch(out: Any, n: int, job: Retrieval) -> list[list[dict[str, Any]]]:
    """Check that the backend kept its contract (one ``Document`` list per request) and render it."""
    if not isinstance(out, list) or len(out) != n:
        raise TypeError(f"backend returned {len(out) if isinstance(out, list) else _kind(out)} results "
                        f"for {n} queries")
    rendered = []
    for docs in out:
        if not isinstance(docs, list) or not all(isinstance(d, Document) for d in docs):
            raise TypeError(f"backend returned {_kind(docs)} where a list of Document was expected")
        rendered.append([_render(d, job) for d in docs[:job.topk]])
    return rendered


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def answer(backend: SearchBackend, job: Retrieval) -> tuple[list[list[dict[str, Any]]], list[str | None], bool]:
    """Run the batch, falling back to one query at a time if it fails.

    Returns the rendered results, one error (or None) per query, and whether the fallback ran.
    """
    n = len(job.requests)
    try:
        return _render_batch(backend.search(job.requests), n, job), [None] * n, False
    except Exception as exc:
        batch_error = _reason(exc)
    log.warning("search batch of %d queries failed: %s", n, batch_error)
    if n == 1:
        return [[_render(failure_document(batch_error), job)]], [batch_error], False
    results: list[list[dict[str, Any]]] = []
    errors: list[str | None] = []
    for request in job.requests:
        try:
            results.append(_render_batch(backend.search([request]), 1, job)[0])
            errors.append(None)
        except Exception as exc:
            reason = _reason(exc)
            log.warning("search failed for query %r: %s", request.query[:100], reason)
            results.append([_render(failure_document(reason), job)])
            errors.append(reason)
    return results, errors, True


class ServerStats:
    """Counters of ``/retrieve`` since start, latency quantiles over the last ``window`` requests.

    Only ever touched from the event loop thread, so it needs no lock.
    """

    def __init__(self, window: int = LATENCY_WINDOW) -> None:
        self.requests = 0
        self.queries = 0
        self.failed_queries = 0
        self.fallbacks = 0
        self.responses: Counter[int] = Counter()
        self.latencies: deque[float] = deque(maxlen=window)
        self.latency_sum = 0.0

    def record(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.responses[status] += 1
        self.latencies.append(seconds)
        self.latency_sum += seconds

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.responses.items() if status >= 400)

    def latency(self) -> dict[str, float | None]:
        """Mean, p50 and p95 in seconds over the window (None before the first request)."""
        xs = sorted(self.latencies)

        def rank(q: float) -> float | None:  # nearest-rank quantile
            return xs[max(0, math.ceil(q * len(xs)) - 1)] if xs else None

        return {"mean": sum(xs) / len(xs) if xs else None, "p50": rank(0.5), "p95": rank(0.95), "window": len(xs)}

    def snapshot(self) -> dict[str, Any]:
        return {"requests": self.requests, "queries": self.queries, "errors": self.errors,
                "failed_queries": self.failed_queries, "batch_fallbacks": self.fallbacks,
                "responses": {str(k): v for k, v in sorted(self.responses.items())}, "latency_s": self.latency()}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float | None) -> str:
    return "NaN" if value is None else repr(float(value))


def prometheus_text(stats: ServerStats, backend: str, backend_metrics: dict[str, float]) -> str:
    """The counters of ``/stats`` in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []

    def metric(name: str, kind: str, help: str, samples: Sequence[tuple[str, float | None]]) -> None:
        lines.extend([f"# HELP {name} {help}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    metric("zerosearch_retrieve_requests_total", "counter", "POST /retrieve requests answered.",
           [("", stats.requests)])
    metric("zerosearch_retrieve_responses_total", "counter", "POST /retrieve responses by HTTP status.",
           [(f'{{code="{code}"}}', n) for code, n in sorted(stats.responses.items())])
    metric("zerosearch_retrieve_errors_total", "counter", "POST /retrieve responses with a 4xx or 5xx status.",
           [("", stats.errors)])
    metric("zerosearch_retrieve_queries_total", "counter", "Queries in valid /retrieve requests.",
           [("", stats.queries)])
    metric("zerosearch_retrieve_failed_queries_total", "counter",
           "Queries answered with a 'search failed' document.", [("", stats.failed_queries)])
    metric("zerosearch_retrieve_batch_fallbacks_total", "counter",
           "Batches whose backend call failed and were retried one query at a time.", [("", stats.fallbacks)])
    lat = stats.latency()
    metric("zerosearch_retrieve_latency_seconds", "summary",
           f"POST /retrieve latency (quantiles over the last {stats.latencies.maxlen} requests).",
           [('{quantile="0.5"}', lat["p50"]), ('{quantile="0.95"}', lat["p95"]),
            ("_sum", stats.latency_sum), ("_count", stats.requests)])
    metric("zerosearch_backend_metric", "gauge", "The backend's own metrics(), by name.",
           [(f'{{backend="{_label(backend)}",name="{_label(k)}"}}', v) for k, v in sorted(backend_metrics.items())])
    return "\n".join(lines) + "\n"


def create_app(backend: SearchBackend, cfg: ServeConfig) -> FastAPI:
    """The search service over ``backend`` (see the module docstring for the protocol)."""
    app = FastAPI(title="zerosearch-rl search", summary=f"Search-R1 /retrieve over the {backend.name!r} backend")
    stats = ServerStats()

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path != "/retrieve":
            return await call_next(request)
        start = time.perf_counter()
        status = 500  # stays 500 if the endpoint raises: Starlette then answers 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            stats.record(status, time.perf_counter() - start)

    @app.post("/retrieve")
    async def retrieve(request: Request) -> JSONResponse:
        try:
            try:
                body = json.loads(await request.body())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RequestError(f"the body is not valid JSON ({exc})", status=400) from None
            job = parse_retrieve(body, cfg, stats.queries)  # no await until the count below: ids are unique
        except RequestError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        stats.queries += len(job.requests)
        if not job.requests:
            return JSONResponse({"result": []})
        results, errors, fell_back = await run_in_threadpool(answer, backend, job)
        stats.fallbacks += fell_back
        failed = sum(e is not None for e in errors)
        stats.failed_queries += failed
        if job.wiki:
            return JSONResponse(results[0])
        return JSONResponse({"result": results, "errors": errors} if failed else {"result": results})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "backend": backend.name}

    @app.get("/stats")
    async def get_stats() -> dict[str, Any]:
        snapshot = stats.snapshot()
        return {"backend": backend.name, **snapshot, "backend_metrics": await run_in_threadpool(backend.metrics)}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        text = prometheus_text(stats, backend.name, await run_in_threadpool(backend.metrics))
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def serve(backend: SearchBackend, cfg: ServeConfig) -> None:
    """Serve ``backend`` on ``cfg.host:cfg.port`` until interrupted (the caller closes the backend)."""
    uvicorn.run(create_app(backend, cfg), host=cfg.host, port=cfg.port, log_level="info")


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 10.0) -> Iterator[str]:
    """Run ``app`` under uvicorn in a background thread; yields its base URL, stops it on exit.

    ``port=0`` takes a free port. For tests, and for running a local search service beside a trainer.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=math.ceil(timeout_s)))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{host}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the search server on {host}:{port} did not start within {timeout_s:g} s "
                               f"(port in use?)")
        time.sleep(0.01)
    try:
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
