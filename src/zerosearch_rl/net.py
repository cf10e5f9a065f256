"""Network calls that never wait forever (docs/design.md, §Nothing waits forever).

Every call has a timeout (set on the HTTP client: httpx, or aiohttp for the simulator), a bounded number
of retries with exponential backoff, and fail-over across several base URLs. Each retry is a warning line
(which URL, which attempt, the error, the wait), so a server that accepts and never answers is not a silent
wait; when every attempt has failed, ``EndpointError`` names the URLs, the number of attempts and the last
error, so the user knows which server to fix.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
log = logging.getLogger(__name__)
#: The same retry (what, URL, attempt) is reported at most once in this many seconds: a step's hundreds of
#: concurrent requests to one dead server make one line per attempt, not hundreds.
RETRY_NOTICE_EVERY_S = 5.0
_NOTICED: dict[tuple[str, str, int], float] = {}


def _notice_retry(what: str, url: str, attempt: int, attempts: int, error: str, wait: float) -> None:
    key, now = (what, url, attempt), time.monotonic()
    if now - _NOTICED.get(key, -RETRY_NOTICE_EVERY_S) < RETRY_NOTICE_EVERY_S:
        return
    _NOTICED[key] = now
    log.warning("%s: %s failed (attempt %d of %d: %s); retrying in %.1f s", what, url, attempt, attempts, error, wait)


class EndpointError(RuntimeError):
    """A remote endpoint that could not be used after every retry; the message names it."""


class NonRetryable(Exception):
    """Raised inside an attempt to stop retrying at once (a 4xx reply: retrying cannot help)."""


class Retryable(Exception):
    """Raised inside an attempt for a failure worth retrying (``check_status``: a 5xx or 429 reply read by a
    client other than httpx); the message alone describes it."""


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt, waiting ``backoff_s * 2**i`` (capped) between."""

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def delay(self, retry: int) -> float:
        return min(self.backoff_s * 2**retry, self.max_backoff_s)


def _status_text(status: int, body: str) -> str:
    return f"HTTP {status}: {body[:200]}".replace("\n", " ")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_text(exc.response.status_code, exc.response.text)
    if isinstance(exc, Retryable):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def raise_for_status(response: httpx.Response) -> None:
    """5xx and 429 are worth retrying; any other 4xx is final."""
    if response.status_code >= 500 or response.status_code == 429:
        response.raise_for_status()
    if response.status_code >= 400:
        raise NonRetryable(_describe(httpx.HTTPStatusError("", request=response.request, response=response)))


def check_status(status: int, body: bytes) -> None:
    """``raise_for_status`` for a reply whose ``body`` another client (aiohttp) has read: ``Retryable`` for a
    5xx or 429, ``NonRetryable`` for any other 4xx, each described as ``raise_for_status``'s are."""
    if status >= 400:
        error = Retryable if status >= 500 or status == 429 else NonRetryable
        raise error(_status_text(status, body.decode("utf-8", "replace")))


# The URL that answered last, per URL list: the next call starts there, so a dead first server costs
# one refused connection per process, not one per request.
_LAST_GOOD: dict[tuple[str, ...], int] = {}


async def call_with_failover(
    urls: Sequence[str],
    attempt: Callable[[str], Awaitable[T]],
    policy: RetryPolicy,
    what: str,
    *,
    retry_on: tuple[type[BaseException], ...] = (),
    secret: str = "",
) -> T:
    """Run ``attempt(url)`` until it succeeds, rotating through ``urls`` on each failure, starting from
    the URL that answered the previous call.

    Retried: httpx transport errors (refused or dropped connections, timeouts), HTTP 5xx and 429
    (``raise_for_status``, ``check_status``), malformed replies (``ValueError``, ``KeyError``, ``TypeError``
    raised while reading one), and the exceptions in ``retry_on`` (another client's transport errors).
    Each retry is a warning (``secret``, an API key that a request carries, written as ***).
    """
    retryable = (httpx.HTTPError, Retryable, ValueError, KeyError, TypeError, *retry_on)
    if not urls:
        raise EndpointError(f"{what}: no URL configured")
    key = tuple(urls)
    first = _LAST_GOOD.get(key, 0)
    last = ""
    for i in range(policy.attempts):
        url = urls[(first + i) % len(urls)]
        try:
            result = await attempt(url)
            _LAST_GOOD[key] = (first + i) % len(urls)
            return result
        except NonRetryable as exc:
            raise EndpointError(f"{what}: {url} refused the request: {exc}") from None
        except retryable as exc:
            last = f"{url}: {_describe(exc)}"
            if i + 1 < policy.attempts:
                error = _describe(exc).replace(secret, "***") if secret else _describe(exc)
                _notice_retry(what, url, i + 1, policy.attempts, error, policy.delay(i))
        if i + 1 < policy.attempts:
            await asyncio.sleep(policy.delay(i))
    tried = ", ".join(dict.fromkeys(urls[(first + i) % len(urls)] for i in range(policy.attempts)))
    raise EndpointError(f"{what}: no answer from {tried} after {policy.attempts} attempts (last error: {last})")


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from synchronous code, even when the calling thread already runs a loop.

    ``make`` builds the coroutine where it will run, so no coroutine is created on one loop and
    awaited on another.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
