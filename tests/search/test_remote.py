"""RemoteBackend: the Search-R1 /retrieve client, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse

from zerosearch_rl.config import SearchConfig, ServeConfig
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import FAILED_DOCUMENT_ID, SearchBackend, SearchError
from zerosearch_rl.search.remote import RemoteBackend, parse_reply, retrieve_url
from zerosearch_rl.server import create_app, serve_in_thread


class EchoBackend:
    """Three titled, scored documents per query whose text shows the request's extras; ``FAIL`` raises."""

    name = "echo"

    def __init__(self) -> None:
        self.calls: list[list[SearchRequest]] = []
        self._lock = threading.Lock()

    def search(self, requests):
        with self._lock:
            self.calls.append(list(requests))
        if any(r.query == "FAIL" for r in requests):
            raise RuntimeError("echo cannot answer FAIL")
        return [[Document(id=f"{r.query}/{i}", title=f"Title {r.query} {i}",
                          text=f"{'noisy' if r.noisy else 'useful'}: {r.question} -> {', '.join(r.answers)}",
                          score=10.0 - i) for i in range(3)] for r in requests]

    def metrics(self):
        return {}

    def close(self):
        pass


@pytest.fixture(scope="module")
def server():
    backend = EchoBackend()
    with serve_in_thread(create_app(backend, ServeConfig(max_queries=4))) as url:
        yield url, backend


def closed_port_url() -> str:
    """A URL nothing listens on (a port just released by the OS)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def remote(*urls: str, **kw) -> RemoteBackend:
    kw = {"timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01, **kw}
    return RemoteBackend(list(urls), **kw)


REQUESTS = [SearchRequest("peru capital", "What is the capital of Peru?", ("Lima",), noisy=True),
            SearchRequest("k2", "Second highest mountain?", ("K2", "Godwin-Austen"))]


def test_round_trip_of_ids_titles_texts_scores_and_extras(server):
    url, backend = server
    client = remote(url, topk=2, send_extras=True)
    assert isinstance(client, SearchBackend)
    calls_before = len(backend.calls)
    pages = client.search(REQUESTS)
    assert pages == [
        [Document("peru capital/0", "Title peru capital 0", "noisy: What is the capital of Peru? -> Lima", 10.0),
         Document("peru capital/1", "Title peru capital 1", "noisy: What is the capital of Peru? -> Lima", 9.0)],
        [Document("k2/0", "Title k2 0", "useful: Second highest mountain? -> K2, Godwin-Austen", 10.0),
         Document("k2/1", "Title k2 1", "useful: Second highest mountain? -> K2, Godwin-Austen", 9.0)],
    ]
    # One POST for the whole batch, and the server's backend got the question, answers and kind.
    assert backend.calls[calls_before:] == [[
        SearchRequest("peru capital", "What is the capital of Peru?", ("Lima",), noisy=True),
        SearchRequest("k2", "Second highest mountain?", ("K2", "Godwin-Austen"), noisy=False),
    ]]
    assert client.metrics() == {"search/batches": 1.0, "search/queries": 2.0, "search/server_failed": 0.0}
    assert client.conditional
    client.close()


def test_without_extras_only_the_protocol_fields_are_sent(server):
    url, backend = server
    client = remote(url)
    assert client.payload(REQUESTS) == {"queries": ["peru capital", "k2"], "topk": 5, "return_scores": True}
    pages = client.search(REQUESTS)
    assert [d.text for d in pages[0]] == ["useful:  ->"] * 3
    assert backend.calls[-1] == [SearchRequest("peru capital"), SearchRequest("k2")]  # no question; p = 0
    assert not client.conditional
    assert client.search([]) == []


def test_server_side_query_failures_come_back_as_counted_failure_documents(server):
    url, _ = server
    client = remote(url, topk=2)
    pages = client.search([SearchRequest("ok"), SearchRequest("FAIL")])
    assert [d.id for d in pages[0]] == ["ok/0", "ok/1"]
    assert len(pages[1]) == 1 and pages[1][0].id == FAILED_DOCUMENT_ID and pages[1][0].title == "Search failed"
    assert client.metrics()["search/server_failed"] == 1


def test_fail_over_from_a_dead_url_to_a_live_one(server):
    url, _ = server
    client = remote(closed_port_url(), url, topk=1)
    assert [[d.id for d in page] for page in client.search(REQUESTS)] == [["peru capital/0"], ["k2/0"]]


def test_a_dead_url_fails_after_bounded_retries_naming_it():
    dead = closed_port_url()
    client = remote(dead, max_retries=2)
    with pytest.raises(SearchError, match=rf"{dead}/retrieve.*3 attempts"):
        client.search(REQUESTS)
    assert client.metrics()["search/failures"] == 1


def scripted_app(reply) -> tuple[FastAPI, list[int]]:
    """A server answering every /retrieve with ``reply()``; the list counts the calls."""
    app, hits = FastAPI(), []

    @app.post("/retrieve")
    def retrieve():
        hits.append(1)
        return reply()

    return app, hits


def test_server_errors_are_retried_a_bounded_number_of_times():
    app, hits = scripted_app(lambda: JSONResponse({"detail": "overloaded"}, status_code=503))
    with serve_in_thread(app) as url:
        with pytest.raises(SearchError, match=rf"{url}/retrieve after 3 attempts.*HTTP 503.*overloaded"):
            remote(url, max_retries=2).search(REQUESTS)
    assert len(hits) == 3


@pytest.mark.parametrize(("reply", "fragment"), [
    (lambda: {"results": []}, "a 'result' list"),
    (lambda: {"result": [[]]}, "'result' holds 1 lists for 2 queries"),
    (lambda: {"result": [[{"document": {"id": "x"}, "score": 1.0}], []]}, "result[0][0] has neither"),
    (lambda: {"result": [[{"document": {"id": "x", "contents": "c"}, "score": "high"}], []]}, "result[0][0].score"),
    (lambda: PlainTextResponse("<html>proxy error</html>"), "not JSON"),
])
def test_a_malformed_reply_is_an_error_naming_the_url(reply, fragment):
    app, hits = scripted_app(reply)
    with serve_in_thread(app) as url:
        with pytest.raises(SearchError) as info:
            remote(url, max_retries=1).search(REQUESTS)
    message = str(info.value)
    assert f"{url}/retrieve" in message and "MalformedReply" in message and fragment in message
    assert len(hits) == 2


def test_a_4xx_is_final_at_once(server):
    url, backend = server
    calls_before = len(backend.calls)
    with pytest.raises(SearchError, match=r"refused the request: HTTP 413.*at most 4"):
        remote(url, max_retries=3, backoff_s=5.0).search([SearchRequest(f"q{i}") for i in range(5)])
    assert len(backend.calls) == calls_before


def test_parse_reply_reads_both_shapes_and_title_text_documents():
    with_scores = {"result": [[{"document": {"id": "1", "contents": '"Lima"\nCapital of Peru.'}, "score": 0.5}]]}
    without = {"result": [[{"id": 1, "contents": '"Lima"\nCapital of Peru.', "extra": "ignored"}]]}
    title_text = {"result": [[{"id": "1", "title": "Lima", "text": "Capital of Peru."}]]}
    assert parse_reply(with_scores, 1) == [[Document("1", "Lima", "Capital of Peru.", 0.5)]]
    assert parse_reply(without, 1) == parse_reply(title_text, 1) == [[Document("1", "Lima", "Capital of Peru.")]]
    assert parse_reply({"result": [[{"id": "2", "contents": "no title here"}]]}, 1) == [
        [Document("2", "", "no title here")]]


def test_search_works_from_inside_a_running_event_loop(server):
    url, _ = server

    async def inside() -> list[list[Document]]:
        return remote(url, topk=1).search(REQUESTS[:1])

    assert [d.id for d in asyncio.run(inside())[0]] == ["peru capital/0"]


def test_from_config_and_url_forms():
    cfg = SearchConfig(backend="remote", urls=("http://a:8000", "http://b:9000/retrieve/"), topk=3, timeout_s=7.0,
                       max_retries=1, backoff_s=0.25)
    client = RemoteBackend.from_config(cfg, send_extras=True)
    assert client.urls == ("http://a:8000/retrieve", "http://b:9000/retrieve")
    assert (client.topk, client.policy.max_retries, client.policy.backoff_s, client.send_extras) == (3, 1, 0.25, True)
    assert client._client.timeout.read == 7.0
    assert retrieve_url("http://h:1/") == "http://h:1/retrieve"
    with pytest.raises(ValueError, match=r"search\.urls"):
        RemoteBackend.from_config(SearchConfig(backend="remote"))
