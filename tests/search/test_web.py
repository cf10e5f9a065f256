from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from zerosearch_rl.net import RetryPolicy
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.web import KEY_ENVS, SerpAPIBackend, parse_serpapi

SECRET = "sk-secret-123"


class FakeSerpAPI(BaseHTTPRequestHandler):
    status = 200
    echo = False  # reply with the request's parameters (a server whose error page repeats the request)
    seen: ClassVar[list[dict]] = []

    def do_GET(self):
        params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        FakeSerpAPI.seen.append(params)
        body = json.dumps(params).encode() if self.echo else json.dumps({
            "answer_box": {"title": "Box", "answer": f"boxed {params['q']}"} if params["q"] == "boxed" else None,
            "organic_results": [{"title": f"T{i}", "snippet": f"{params['q']} snippet {i}", "link": f"http://r/{i}"}
                                for i in range(8)],
        }).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serp():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSerpAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeSerpAPI.seen, FakeSerpAPI.status, FakeSerpAPI.echo = [], 200, False
    yield f"http://127.0.0.1:{server.server_address[1]}/search.json"
    server.shutdown()
    server.server_close()


def test_serpapi_batch_parses_results_in_order(serp):
    backend = SerpAPIBackend(topk=3, url=serp, api_key=SECRET)
    pages = backend.search([SearchRequest("first"), SearchRequest("boxed"), SearchRequest("third")])
    assert [d.text for d in pages[0]] == ["first snippet 0", "first snippet 1", "first snippet 2"]
    assert pages[1][0].text == "boxed boxed" and len(pages[1]) == 3  # the answer box comes first
    assert pages[2][0].title == "T0" and pages[2][0].id == "http://r/0"
    assert {p["q"] for p in FakeSerpAPI.seen} == {"first", "boxed", "third"}
    assert all(p["api_key"] == SECRET and p["engine"] == "google" for p in FakeSerpAPI.seen)


def test_missing_key_is_a_clear_error_naming_both_variables(monkeypatch):
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SER_API_KEY", "")  # set but empty is not a key
    with pytest.raises(SearchError, match=r"needs an API key in the environment variable SERPAPI_API_KEY or "
                                          r"SER_API_KEY$"):
        SerpAPIBackend()


# SER_API_KEY is the variable ZeroSearch's llm_agent/generation.py (`retrieve_from_google`) and its README read.
@pytest.mark.parametrize(("env", "key"), [
    ({"SERPAPI_API_KEY": SECRET}, SECRET),
    ({"SER_API_KEY": SECRET}, SECRET),
    ({"SERPAPI_API_KEY": SECRET, "SER_API_KEY": "other"}, SECRET),  # SerpAPI's own name wins
    ({"SERPAPI_API_KEY": "", "SER_API_KEY": SECRET}, SECRET),
])
def test_key_from_either_variable(serp, monkeypatch, env, key):
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    SerpAPIBackend(url=serp).search([SearchRequest("q")])
    assert FakeSerpAPI.seen[0]["api_key"] == key


def test_key_from_environment_and_never_in_errors(serp, monkeypatch):
    monkeypatch.setenv(KEY_ENVS[0], SECRET)
    FakeSerpAPI.status = 503
    backend = SerpAPIBackend(url=serp, retry=RetryPolicy(max_retries=1, backoff_s=0.01))
    with pytest.raises(SearchError) as info:
        backend.search([SearchRequest("q")])
    assert "after 2 attempts" in str(info.value) and serp in str(info.value)
    assert SECRET not in str(info.value)
    assert len(FakeSerpAPI.seen) == 2 and FakeSerpAPI.seen[0]["api_key"] == SECRET


def test_each_retry_is_a_warning_that_never_shows_the_key(serp, caplog):
    FakeSerpAPI.status, FakeSerpAPI.echo = 503, True
    backend = SerpAPIBackend(url=serp, api_key=SECRET, retry=RetryPolicy(max_retries=1, backoff_s=0.01))
    with caplog.at_level("WARNING", logger="zerosearch_rl.net"), pytest.raises(SearchError):
        backend.search([SearchRequest("q")])
    (retry,) = [r.getMessage() for r in caplog.records if r.name == "zerosearch_rl.net"]
    assert retry.startswith(f"serpapi: {serp} failed (attempt 1 of 2: HTTP 503: ") and "retrying in 0.0 s" in retry
    assert SECRET not in retry and '"api_key": "***"' in retry


def test_parse_skips_results_without_snippets():
    payload = {"organic_results": [{"title": "no snippet"}, {"title": "ok", "snippet": "s", "link": "l"}]}
    assert [d.text for d in parse_serpapi(payload, 5)] == ["s"]
    assert parse_serpapi({}, 5) == []


def test_the_page_is_zerosearch_s_rendering_of_the_organic_results():
    """Fact (ZeroSearch retrieve_from_google): text = title + snippet (each only if present), then
    '\\n'.join(f"Doc {i + 1}: {doc}") over organic_results; the answer box is not shown."""
    from zerosearch_rl.protocol import render_zerosearch
    from zerosearch_rl.search.web import parse_serpapi

    payload = {"answer_box": {"answer": "Lima"},
               "organic_results": [{"title": "Lima - Wikipedia", "snippet": "Lima is the capital of Peru."},
                                   {"title": "No snippet here"}, {"snippet": "Only a snippet."}]}
    docs = parse_serpapi(payload, topk=5)
    expected = "Doc 1: Lima - WikipediaLima is the capital of Peru.\nDoc 2: No snippet here\nDoc 3: Only a snippet."
    assert {d.page for d in docs} == {expected}
    assert render_zerosearch(docs) == f"\n\n<information>{expected}</information>\n\n"
