"""OpenAIChatClient against a real loopback server: body, order, overlap, retries, fail-over, timeouts, keys."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time

import pytest

from fakes.openai_server import FakeOpenAIServer, unused_base_url
from zerosearch_rl.config import SimulatorConfig
from zerosearch_rl.llm.base import ChatLLM, Sampling
from zerosearch_rl.llm.openai_http import OpenAIChatClient
from zerosearch_rl.net import EndpointError, RetryPolicy

FAST = RetryPolicy(max_retries=2, backoff_s=0.01)
SAMPLING = Sampling(temperature=0.3, top_p=0.9, max_new_tokens=17)


@pytest.fixture
def serve():
    """``serve(**faults)`` starts a fake server that stops at the end of the test."""
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(FakeOpenAIServer(**kw))


@pytest.fixture
def client():
    """``client(urls, model, **kw)`` builds a client (fast retries by default) closed at the end of the test."""
    made: list[OpenAIChatClient] = []

    def make(urls, model="fake-model", **kw):
        kw.setdefault("retry", FAST)
        kw.setdefault("timeout_s", 2.0)
        made.append(OpenAIChatClient(urls, model, **kw))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_sends_one_exact_chat_request_per_message(serve, client):
    server = serve()
    llm = client([server.base_url], "sim-7b")
    assert isinstance(llm, ChatLLM)
    [done] = llm.generate(["who wrote hamlet"], Sampling(temperature=0.3, top_p=0.9, max_new_tokens=17, seed=5))
    assert done.ok and done.text == "who wrote hamlet"
    assert (done.prompt_tokens, done.completion_tokens) == (3, 3)
    assert done.latency_s > 0
    assert server.chat_bodies() == [{
        "model": "sim-7b",
        "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "who wrote hamlet"}],
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 17, "seed": 5,
    }]
    llm.generate(["again"], SAMPLING)
    assert "seed" not in server.chat_bodies()[1]
    llm.generate(["twin", "twin"], Sampling(seed=5))  # message i is seeded with seed + i
    assert sorted(b["seed"] for b in server.chat_bodies()[2:]) == [5, 6]
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 4  # no model lookup when configured


def test_batch_order_is_kept_when_replies_finish_out_of_order(serve, client):
    def slow_for_small(message: str) -> str:
        time.sleep(0.03 * (9 - int(message)))  # "0" answers last
        return f"reply {message}"

    server = serve(reply=slow_for_small)
    out = client([server.base_url]).generate([str(i) for i in range(10)], SAMPLING)
    assert [c.text for c in out] == [f"reply {i}" for i in range(10)]


def test_requests_of_a_batch_overlap(serve, client):
    server = serve(gather=20)  # the first replies wait until 20 requests are in flight together
    out = client([server.base_url], concurrency=64).generate([f"q{i}" for i in range(40)], SAMPLING)
    assert all(c.ok for c in out)
    assert server.max_in_flight >= 20


def test_concurrency_limit_is_respected(serve, client):
    server = serve(gather=3, delay_s=0.05)  # three in flight for sure; a fourth would arrive during the delay
    out = client([server.base_url], concurrency=3).generate([f"q{i}" for i in range(12)], SAMPLING)
    assert all(c.ok for c in out)
    assert server.max_in_flight == 3


def test_http_500s_are_retried(serve, client):
    server = serve(fail_first=2)
    [done] = client([server.base_url]).generate(["hello"], SAMPLING)
    assert done.text == "hello"
    assert len(server.chat_bodies()) == 3


def test_dropped_connections_are_retried(serve, client):
    server = serve(drop_first=2)
    [done] = client([server.base_url]).generate(["hello"], SAMPLING)
    assert done.text == "hello"
    assert len(server.chat_bodies()) == 3


def test_fails_over_to_the_second_url_when_the_first_is_down(serve, client):
    server = serve()
    out = client([unused_base_url(), server.base_url]).generate(["a", "b", "c"], SAMPLING)
    assert [c.text for c in out] == ["a", "b", "c"]


def test_a_request_failing_every_retry_is_an_error_naming_the_url_after_its_retries(serve, client):
    server = serve(fail_if=lambda message: message == "bad")
    policy = RetryPolicy(max_retries=3, backoff_s=0.05)
    out = client([server.base_url], retry=policy).generate(["ok", "bad", "fine"], SAMPLING)
    assert [c.text for c in out] == ["ok", None, "fine"]  # neighbours are unharmed
    assert server.base_url in out[1].error and "HTTP 500" in out[1].error
    assert len([b for b in server.chat_bodies() if b["messages"][-1]["content"] == "bad"]) == policy.attempts


def test_an_unreachable_server_is_an_error_naming_the_url(client):
    url = unused_base_url()
    [done] = client([url]).generate(["hello"], SAMPLING)
    assert done.text is None and url in done.error


def test_a_hung_server_fails_by_timeout_and_still_shuts_down(client):
    policy = RetryPolicy(max_retries=1, backoff_s=0.01)
    server = FakeOpenAIServer(hang=True).start()
    try:
        start = time.perf_counter()
        [done] = client([server.base_url], retry=policy, timeout_s=0.3).generate(["hello"], SAMPLING)
        elapsed = time.perf_counter() - start
    finally:
        server.stop()
    assert done.text is None and server.base_url in done.error and "Timeout" in done.error
    assert elapsed >= policy.attempts * 0.3  # each attempt waited its timeout (a lower bound: load cannot break it)
    assert not [t for t in threading.enumerate() if t.name == "fake-openai"]  # stop() released and joined them


def test_model_comes_from_the_models_endpoint_once(serve, client):
    server = serve(models=("served-model", "other"))
    llm = client([server.base_url], "")
    llm.generate(["a", "b"], SAMPLING)
    llm.generate(["c"], SAMPLING)
    assert [b["model"] for b in server.chat_bodies()] == ["served-model"] * 3
    assert [r.path for r in server.requests].count("/v1/models") == 1


def test_model_lookup_on_an_unreachable_server_raises_naming_the_url(client):
    url = unused_base_url()
    with pytest.raises(EndpointError, match=url):
        client([url], "").generate(["hello"], SAMPLING)


def test_api_key_is_sent_as_bearer_header_and_never_in_an_error(serve, client, monkeypatch):
    monkeypatch.setenv("ZS_TEST_API_KEY", "sk-secret-123")
    server = serve(fail_if=lambda message: message == "bad")
    out = client([server.base_url], api_key_env="ZS_TEST_API_KEY").generate(["ok", "bad"], SAMPLING)
    assert {r.headers["authorization"] for r in server.requests} == {"Bearer sk-secret-123"}
    assert out[0].ok and "sk-secret-123" not in out[1].error
    with pytest.raises(EndpointError) as raised:
        client([unused_base_url()], "", api_key_env="ZS_TEST_API_KEY").generate(["x"], SAMPLING)
    assert "sk-secret-123" not in str(raised.value)


def test_a_missing_api_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ZS_TEST_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ZS_TEST_API_KEY"):
        OpenAIChatClient(["http://127.0.0.1:1/v1"], "m", api_key_env="ZS_TEST_API_KEY")


def test_a_4xx_reply_is_final_at_once(serve, client):
    server = serve()
    url = f"{server.url}/wrong/v1"
    [done] = client([url], retry=RetryPolicy(max_retries=3, backoff_s=0.01)).generate(["x"], SAMPLING)
    assert done.text is None and f"{url} refused the request: HTTP 404" in done.error
    assert len(server.requests) == 1


def test_a_proxy_named_by_the_environment_is_used_unless_no_proxy_exempts_the_host(serve, client, monkeypatch):
    server = serve()
    proxy = unused_base_url().removesuffix("/v1")
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    [done] = client([server.base_url]).generate(["x"], SAMPLING)
    assert done.text is None and proxy.removeprefix("http://") in done.error and not server.requests
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client([server.base_url]).generate(["x"], SAMPLING)[0].text == "x"


def test_a_client_dropped_without_close_stops_its_thread(serve):
    server = serve()
    llm = OpenAIChatClient([server.base_url], "m")
    assert llm.generate(["x"], SAMPLING)[0].ok
    thread = llm._thread
    del llm
    gc.collect()
    thread.join(timeout=5.0)
    assert not thread.is_alive()


def test_a_malformed_reply_is_retried_then_an_error(serve, client):
    server = serve(malformed_if=lambda message: message == "bad")
    out = client([server.base_url]).generate(["ok", "bad"], SAMPLING)
    assert out[0].text == "ok"
    assert out[1].text is None and "malformed" in out[1].error and server.base_url in out[1].error
    assert len(server.chat_bodies()) == 1 + FAST.attempts


def test_agenerate_and_generate_work_inside_a_running_loop(serve, client):
    server = serve()
    llm = client([server.base_url])

    async def main() -> tuple[list[str | None], list[str | None]]:
        from_async = await llm.agenerate(["a", "b"], SAMPLING)
        from_sync = llm.generate(["c"], SAMPLING)  # blocks this loop, but does not deadlock
        return [c.text for c in from_async], [c.text for c in from_sync]

    assert asyncio.run(main()) == (["a", "b"], ["c"])
    assert asyncio.run(main()) == (["a", "b"], ["c"])  # a second loop reuses the same client


def test_from_config(serve):
    server = serve()
    cfg = SimulatorConfig(client="openai", model="sim", base_urls=(server.base_url,), concurrency=2,
                          timeout_s=1.0, max_retries=1, backoff_s=0.01)
    with OpenAIChatClient.from_config(cfg) as llm:
        assert llm.retry == RetryPolicy(max_retries=1, backoff_s=0.01)
        assert [c.text for c in llm.generate(["x"], SAMPLING)] == ["x"]
    assert server.chat_bodies()[0]["model"] == "sim"


def test_a_closed_client_refuses_work(serve):
    server = serve()
    llm = OpenAIChatClient([server.base_url], "m")
    llm.close()
    llm.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        llm.generate(["x"], SAMPLING)
