"""``ChatLLM`` over an OpenAI-compatible server (sglang, vLLM): every message of a batch in flight at once.

Each message becomes the single user message of one ``POST {base_url}/chat/completions``; up to
``concurrency`` of them run together. Failed requests are retried with backoff and fail-over across base
URLs (``net.call_with_failover``); one that still fails becomes a ``Completion`` whose error names the
URLs, so a batch never raises for one bad request.

Two design choices:

- A private event loop. The pooled connections of an ``httpx.AsyncClient`` belong to the loop that opened
  them, so a client kept across ``asyncio.run`` calls (``net.run_sync`` starts one per call) fails on its
  second batch with "Event loop is closed". The client owns a loop in a daemon thread instead; ``generate``
  (sync, any thread) and ``agenerate`` (any caller's loop) run their batch there, and keep-alive
  connections live from one training step to the next.
- One single-connection ``httpx.AsyncClient`` per concurrency slot ("lane") rather than one client with a
  big pool: httpcore's pool does O(connections^2) work each time a request starts or ends
  (encode/httpcore#1035). In ``benchmarks/bench_simulator.py`` a batch of 320 took 6.1 s that way, against
  0.75 s with lanes and 3.4 s for the 10-thread reference. The lanes share the headers, the timeout and
  one SSL context (building one takes ~30 ms).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from zerosearch_rl.config import SimulatorConfig
from zerosearch_rl.llm.base import Completion, Sampling
from zerosearch_rl.net import EndpointError, RetryPolicy, call_with_failover, raise_for_status

T = TypeVar("T")


def _parse_reply(body: Any) -> tuple[str, int, int]:
    """(text, prompt tokens, completion tokens) of a chat reply; ``ValueError`` (so: retried) if malformed."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise ValueError(f"malformed reply without choices[0].message.content: {str(body)[:200]}")
    usage = body.get("usage") or {}
    return content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class OpenAIChatClient:
    """Chat completions against one or more OpenAI-compatible base URLs (each ending in ``/v1``).

    ``model`` empty means the first id listed by ``GET {base_url}/models``, looked up once on the first
    batch; if no server answers that lookup, ``generate`` raises ``EndpointError`` naming the URLs.
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str = "",
        *,
        api_key_env: str = "",
        concurrency: int = 64,
        timeout_s: float = 60.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if isinstance(base_urls, str) or not base_urls:
            raise ValueError(f"OpenAIChatClient needs a list of base URLs (simulator.base_urls), got {base_urls!r}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        headers: dict[str, str] = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"environment variable {api_key_env!r} (simulator.api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.base_urls = tuple(url.rstrip("/") for url in base_urls)
        self.retry = retry or RetryPolicy()
        self._model = model
        ssl_context = httpx.create_ssl_context()
        one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._lanes = [httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s), limits=one_connection,
                                         verify=ssl_context) for _ in range(concurrency)]
        self._free_lanes: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for lane in self._lanes:
            self._free_lanes.put_nowait(lane)
        self._model_lock = asyncio.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-http", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, cfg: SimulatorConfig) -> OpenAIChatClient:
        return cls(cfg.base_urls, cfg.model, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                   timeout_s=cfg.timeout_s, retry=RetryPolicy(max_retries=cfg.max_retries, backoff_s=cfg.backoff_s))

    def generate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]:
        """One completion per message, in order. Blocks; callable from any thread, even one running a loop."""
        return self._submit(self._batch(list(messages), sampling)).result()

    async def agenerate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]:
        """``generate`` for async callers: awaits the batch without blocking the caller's loop."""
        return await asyncio.wrap_future(self._submit(self._batch(list(messages), sampling)))

    def close(self) -> None:
        """Close the connections and stop the private loop; later calls raise ``RuntimeError``."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._aclose_lanes(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("OpenAIChatClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _aclose_lanes(self) -> None:
        await asyncio.gather(*(lane.aclose() for lane in self._lanes))

    @contextlib.asynccontextmanager
    async def _lane(self) -> AsyncIterator[httpx.AsyncClient]:
        """A free lane for one request (with its retries): waits while ``concurrency`` requests are in flight."""
        lane = await self._free_lanes.get()
        try:
            yield lane
        finally:
            self._free_lanes.put_nowait(lane)

    async def _batch(self, messages: list[str], sampling: Sampling) -> list[Completion]:
        model = await self._model_name()
        return list(await asyncio.gather(*(self._one(model, m, sampling) for m in messages)))

    async def _model_name(self) -> str:
        async with self._model_lock:
            if not self._model:
                async with self._lane() as lane:
                    self._model = await call_with_failover(
                        self.base_urls, lambda url: self._first_model(lane, url), self.retry,
                        "model lookup (GET /models)")
        return self._model

    @staticmethod
    async def _first_model(lane: httpx.AsyncClient, url: str) -> str:
        response = await lane.get(f"{url}/models")
        raise_for_status(response)
        models = response.json()["data"]
        if not models:
            raise ValueError("the server lists no model")
        return str(models[0]["id"])

    async def _one(self, model: str, message: str, sampling: Sampling) -> Completion:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": message}],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        async with self._lane() as lane:
            start = time.perf_counter()  # latency counts from here: the wait for a free lane is not the server's
            try:
                text, prompt_tokens, completion_tokens = await call_with_failover(
                    self.base_urls, lambda url: self._chat(lane, url, payload), self.retry, "chat completion")
            except EndpointError as exc:
                return Completion(text=None, error=str(exc), latency_s=time.perf_counter() - start)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=time.perf_counter() - start)

    @staticmethod
    async def _chat(lane: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> tuple[str, int, int]:
        response = await lane.post(f"{url}/chat/completions", json=payload)
        raise_for_status(response)
        return _parse_reply(response.json())
