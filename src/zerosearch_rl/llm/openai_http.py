"""``ChatLLM`` over an OpenAI-compatible server (sglang, vLLM): every message of a batch in flight at once.

Each message becomes the user message of one ``POST {base_url}/chat/completions``, after the system
message (``llm.base.chat_messages``: by default an empty one, as the original ZeroSearch); up to
``concurrency`` of them run together. Failed requests are retried with backoff and fail-over across base
URLs (``net.call_with_failover``); one that still fails becomes a ``Completion`` whose error names the
URLs, so a batch never raises for one bad request.

Design choices:

- aiohttp, not httpx. With hundreds of requests in flight the client is CPU-bound. In the set-up of
  ``benchmarks/bench_simulator.py`` (320 queries, 0.1 s per request, 2 shared cores), side by side:
  one aiohttp session spent ~0.3-0.5 ms of client CPU per request and took 0.39 s a batch; the previous
  design, one single-connection ``httpx.AsyncClient`` per slot, ~1.5 ms and 0.68 s; one httpx client with
  a pool of 320, 5.6 s (httpcore's pool does O(connections^2) work per request, encode/httpcore#1035);
  the 10-thread reference, 3.4 s.
- A private event loop. A session and its pooled connections belong to the loop that opened them, so a
  client kept across ``asyncio.run`` calls (``net.run_sync`` starts one per call) would fail on its second
  batch. The client owns a loop in a daemon thread instead; ``generate`` (sync, any thread) and
  ``agenerate`` (any caller's loop) run their batch there, and keep-alive connections live from one
  training step to the next. The loop stops on ``close``, when the client is garbage collected, or at exit.
- The environment counts as it did under httpx: proxies from ``HTTP(S)_PROXY`` / ``NO_PROXY``, looked up
  once per base URL (aiohttp's ``trust_env`` rereads them and ``~/.netrc`` on every request, ~0.3 ms each),
  and httpx's TLS context (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), as the project's other clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import ssl
import threading
import time
import weakref
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from zerosearch_rl.config import SimulatorConfig
from zerosearch_rl.llm.base import Completion, Sampling, chat_messages
from zerosearch_rl.net import EndpointError, RetryPolicy, call_with_failover, check_status

T = TypeVar("T")

# aiohttp's transport errors (refused or dropped connections, bad URLs) and its timeouts: worth retrying.
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


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


def _env_proxy(url: str) -> dict[str, Any]:
    """The ``proxy``/``proxy_auth`` request arguments that the environment names for ``url`` (none if none)."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return {}
    return {"proxy": proxy, "proxy_auth": auth}


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


async def _open_session(headers: dict[str, str], concurrency: int, timeout_s: float,
                        ssl_context: ssl.SSLContext) -> aiohttp.ClientSession:
    """The session, made on the private loop (aiohttp binds it to the loop it is made on)."""
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=ssl_context)
    return aiohttp.ClientSession(connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s))


def _shut_down(loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession, thread: threading.Thread) -> None:
    """Close the session's connections, then stop the private loop (whose thread then closes it)."""
    async def stop() -> None:
        try:
            await session.close()
        finally:
            loop.stop()

    if threading.current_thread() is thread:  # the last reference was dropped on the loop's own thread
        loop.create_task(stop())
        return
    asyncio.run_coroutine_threadsafe(stop(), loop)
    thread.join(timeout=10.0)


class OpenAIChatClient:
    """Chat completions against one or more OpenAI-compatible base URLs (each ending in ``/v1``).

    ``model`` empty means the first id listed by ``GET {base_url}/models``, looked up once on the first
    batch; if no server answers that lookup, ``generate`` raises ``EndpointError`` naming the URLs.
    ``timeout_s`` bounds each attempt of a request, from connecting to the last byte of the reply.
    ``system_message`` goes before each message (``llm.base.chat_messages``; the chat endpoint only).
    With ``Sampling.seed = s`` message ``i`` of a batch is sent with seed ``s + i``, as in ``VLLMChat``.
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
        system_message: str | None = "",
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
        self.system_message = system_message
        self._model = model
        self._proxies = {url: _env_proxy(url) for url in self.base_urls}
        self._slots = asyncio.Semaphore(concurrency)  # requests in flight, each with its retries
        self._model_lock = asyncio.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_loop, args=(self._loop,), name="openai-http", daemon=True)
        self._thread.start()
        ssl_context = httpx.create_ssl_context()
        self._session = asyncio.run_coroutine_threadsafe(
            _open_session(headers, concurrency, timeout_s, ssl_context), self._loop).result()
        self._closer = weakref.finalize(self, _shut_down, self._loop, self._session, self._thread)

    @classmethod
    def from_config(cls, cfg: SimulatorConfig) -> OpenAIChatClient:
        return cls(cfg.base_urls, cfg.model, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
                   timeout_s=cfg.timeout_s, retry=RetryPolicy(max_retries=cfg.max_retries, backoff_s=cfg.backoff_s),
                   system_message=cfg.system_message)

    def generate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]:
        """One completion per message, in order. Blocks; callable from any thread, even one running a loop."""
        return self._submit(self._batch(list(messages), sampling)).result()

    async def agenerate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]:
        """``generate`` for async callers: awaits the batch without blocking the caller's loop."""
        return await asyncio.wrap_future(self._submit(self._batch(list(messages), sampling)))

    def close(self) -> None:
        """Close the connections and stop the private loop; later calls raise ``RuntimeError``."""
        self._closer()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if not self._closer.alive:
            coro.close()
            raise RuntimeError("OpenAIChatClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _batch(self, messages: list[str], sampling: Sampling) -> list[Completion]:
        model = await self._model_name()
        return list(await asyncio.gather(*(self._one(model, m, sampling, i) for i, m in enumerate(messages))))

    async def _model_name(self) -> str:
        async with self._model_lock:
            if not self._model:
                async with self._slots:
                    self._model = await call_with_failover(self.base_urls, self._first_model, self.retry,
                                                           "model lookup (GET /models)", retry_on=_TRANSPORT_ERRORS)
        return self._model

    async def _first_model(self, url: str) -> str:
        async with self._session.get(f"{url}/models", allow_redirects=False, **self._proxies[url]) as response:
            body = await response.read()
        check_status(response.status, body)
        models = json.loads(body)["data"]
        if not models:
            raise ValueError("the server lists no model")
        return str(models[0]["id"])

    #: The endpoint under each base URL; subclasses for other endpoints change it with ``_payload``/``_parse``.
    endpoint = "chat/completions"

    def _payload(self, message: str) -> dict[str, Any]:
        """The endpoint-specific part of a request body (here: the system message, then ``message``)."""
        return {"messages": chat_messages(message, self.system_message)}

    def _parse(self, body: Any) -> tuple[str, int, int]:
        return _parse_reply(body)

    async def _one(self, model: str, message: str, sampling: Sampling, index: int) -> Completion:
        payload: dict[str, Any] = {
            "model": model,
            **self._payload(message),
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.top_p is not None:
            payload["top_p"] = sampling.top_p
        if sampling.seed is not None:  # seed + index, as VLLMChat: equal messages of a batch get their own samples
            payload["seed"] = sampling.seed + index
        async with self._slots:
            start = time.perf_counter()  # latency counts from here: the wait for a free slot is not the server's
            try:
                text, prompt_tokens, completion_tokens = await call_with_failover(
                    self.base_urls, lambda url: self._chat(url, payload), self.retry,
                    self.endpoint.replace("/", " ").removesuffix("s"),
                    retry_on=_TRANSPORT_ERRORS)
            except EndpointError as exc:
                return Completion(text=None, error=str(exc), latency_s=time.perf_counter() - start)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          latency_s=time.perf_counter() - start)

    async def _chat(self, url: str, payload: dict[str, Any]) -> tuple[str, int, int]:
        async with self._session.post(f"{url}/{self.endpoint}", json=payload, allow_redirects=False,
                                      **self._proxies[url]) as response:
            body = await response.read()
        check_status(response.status, body)
        return self._parse(json.loads(body))
