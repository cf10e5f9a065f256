from __future__ import annotations

import asyncio

import httpx
import pytest

from zerosearch_rl.net import EndpointError, NonRetryable, RetryPolicy, call_with_failover, run_sync


def test_failover_then_sticks_to_the_url_that_answered():
    calls: list[str] = []

    async def attempt(url):
        calls.append(url)
        if url == "http://dead":
            raise httpx.ConnectError("refused")
        return url

    urls = ["http://dead", "http://alive-1"]
    policy = RetryPolicy(max_retries=2, backoff_s=0.0)
    assert asyncio.run(call_with_failover(urls, attempt, policy, "sim")) == "http://alive-1"
    assert asyncio.run(call_with_failover(urls, attempt, policy, "sim")) == "http://alive-1"
    assert calls == ["http://dead", "http://alive-1", "http://alive-1"]  # the dead one is tried once, not per call


def test_retries_are_bounded_and_the_error_names_every_url(monkeypatch):
    calls, waits = [], []

    async def attempt(url):
        calls.append(url)
        raise httpx.ReadTimeout("slow")

    async def sleep(seconds):  # the waits between attempts, recorded instead of slept
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    policy = RetryPolicy(max_retries=3, backoff_s=0.01)
    with pytest.raises(EndpointError, match=r"sim: no answer from http://a-2, http://b-2 after 4 attempts"):
        asyncio.run(call_with_failover(["http://a-2", "http://b-2"], attempt, policy, "sim"))
    assert len(calls) == 4
    assert waits == [0.01, 0.02, 0.04]  # doubling backoff, none after the last attempt


def test_non_retryable_fails_at_once_and_malformed_replies_are_retried():
    async def refused(url):
        raise NonRetryable("HTTP 400: bad field")

    with pytest.raises(EndpointError, match="http://c-3 refused the request: HTTP 400: bad field"):
        asyncio.run(call_with_failover(["http://c-3"], refused, RetryPolicy(max_retries=5, backoff_s=0), "x"))
    replies = iter([KeyError("choices"), "ok"])

    async def flaky(url):
        r = next(replies)
        if isinstance(r, Exception):
            raise r
        return r

    assert asyncio.run(call_with_failover(["http://d-4"], flaky, RetryPolicy(1, 0.0), "x")) == "ok"


def test_backoff_doubles_and_is_capped():
    p = RetryPolicy(max_retries=10, backoff_s=0.5, max_backoff_s=3.0)
    assert [p.delay(i) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert p.attempts == 11


def test_no_urls_is_an_error():
    async def attempt(url):
        return url

    with pytest.raises(EndpointError, match="no URL configured"):
        asyncio.run(call_with_failover([], attempt, RetryPolicy(), "remote"))


def test_run_sync_works_inside_a_running_loop():
    async def value():
        await asyncio.sleep(0)
        return 42

    async def caller():
        return run_sync(value)  # a sync library call made from async code

    assert run_sync(value) == 42
    assert asyncio.run(caller()) == 42
