"""``ChatLLM`` over an OpenAI-compatible server (sglang, vLLM): every message of a batch in flight at once.

Each message becomes the single user message of one ``POST {base_url}/chat/completions``; up to
``concurrency`` of them run together over one shared ``httpx.AsyncClient``. Failed requests are retried
with backoff and fail-over across base URLs (``net.call_with_failover``); one that still fails becomes a
``Completion`` whose error names the URLs, so a batch never raises for one bad request.

Why a private event loop: the pooled connections of an ``httpx.AsyncClient`` belong to the loop that
opened them, so a client kept across ``asyncio.run`` calls (``net.run_sync`` starts one per call) fails
on its second batch with "Event loop is closed". The client therefore owns a loop in a daemon thread;
``generate`` (sync, any thread) and ``agenerate`` (any caller's loop) both run their batch there, and
keep-alive connections are reused from one training step to the next.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Coroutine, Sequence
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
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"environment variable {api_key_env!r} (simulator.api_key_env) is not set")
            headers["Authorization"] = f"Bearer {key}"
        self.base_urls = tuple(url.rstrip("/") for url in base_urls)
        self.retry = retry or RetryPolicy()
        self._model = model
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s), limits=limits)
        self._slots = asyncio.Semaphore(concurrency)
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
        asyncio.run_coroutine_threadsafe(self._http.aclose(), self._loop).result()
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

    async def _batch(self, messages: list[str], sampling: Sampling) -> list[Completion]:
        model = await self._model_name()
        return list(await asyncio.gather(*(self._one(model, m, sampling) for m in messages)))

    async def _model_name(self) -> str:
        async with self._model_lock:
            if not self._model:
                self._model = await call_with_failover(self.base_urls, self._first_model, self.retry,
                                                       "model lookup (GET /models)")
        return self._model

    async def _first_model(self, url: str) -> str:
        response = await self._http.get(f"{url}/models")
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

        async def attempt(url: str) -> tuple[str, int, int]:
            response = await self._http.post(f"{url}/chat/completions", json=payload)
            raise_for_status(response)
            return _parse_reply(response.json())

        async with self._slots:  # latency counts from here: the wait for a free slot is not the server's
            start = time.perf_counter()
            try:
                text, prompt_tokens, completion_tokens = await call_with_failover(
                    self.base_urls, attempt, self.retry, "chat completion")
            except EndpointError as exc:
                return Completion(text=None, error=str(exc), latency_s=time.perf_counter() - start)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=time.perf_counter() - start)
