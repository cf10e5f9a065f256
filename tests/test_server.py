"""The search service: Search-R1 /retrieve protocol, ZeroSearch extras, validation, per-query failures,
stats, and a real uvicorn server on 127.0.0.1 under concurrent load."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from zerosearch_rl.config import ServeConfig
from zerosearch_rl.curriculum import is_noisy
from zerosearch_rl.llm.base import Completion
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.simulated import SimulatedBackend
from zerosearch_rl.server import create_app, serve_in_thread


class ScriptedBackend:
    """``n`` documents per query (three unless told), whose text shows the request's kind, question and answers.

    A query containing ``FAIL`` makes the whole call raise; ``WRONG`` gets a non-document back, ``NAN``
    documents scored NaN.
    """

    name = "scripted"

    def __init__(self, delay_s: float = 0.0, n: int = 3) -> None:
        self.delay_s, self.n = delay_s, n
        self.calls: list[list[SearchRequest]] = []
        self._lock = threading.Lock()

    def search(self, requests):
        with self._lock:
            self.calls.append(list(requests))
        time.sleep(self.delay_s)
        bad = [r.query for r in requests if "FAIL" in r.query]
        if bad:
            raise RuntimeError(f"scripted failure on {bad}")
        return [["not a document"] if "WRONG" in r.query else docs_for(r, self.n) for r in requests]

    def metrics(self):
        with self._lock:
            return {"search/queries": float(sum(map(len, self.calls)))}

    def close(self):
        pass


def docs_for(r: SearchRequest, n: int = 3) -> list[Document]:
    kind = "noisy" if r.noisy else "useful"
    return [Document(id=f"{r.query}#{i}", title=f"{r.query} {i}",
                     text=f"{kind} doc {i}; question={r.question}; answers={'|'.join(r.answers)}",
                     score=float("nan") if "NAN" in r.query else round(1.0 - i / 10, 3)) for i in range(n)]


def expected(query: str, n: int = 3, scores: bool = True, kind: str = "useful", question: str = "",
             answers: str = "") -> list[dict]:
    """What the protocol says the reply holds for one query, written out by hand."""
    out = []
    for i in range(n):
        text = f"{kind} doc {i}; question={question}; answers={answers}"
        doc = {"id": f"{query}#{i}", "contents": f'"{query} {i}"\n{text}'}
        out.append({"document": doc, "score": round(1.0 - i / 10, 3)} if scores else doc)
    return out


def make_client(backend=None, **cfg) -> tuple[TestClient, ScriptedBackend]:
    backend = backend or ScriptedBackend()
    return TestClient(create_app(backend, ServeConfig(**cfg))), backend


def test_retrieve_with_scores_follows_the_search_r1_protocol():
    client, backend = make_client()
    r = client.post("/retrieve", json={"queries": ["capital of peru", "lima"], "topk": 2, "return_scores": True})
    assert r.status_code == 200
    assert r.json() == {"result": [expected("capital of peru", 2), expected("lima", 2)]}
    assert [len(c) for c in backend.calls] == [2]  # one batched backend call


def test_retrieve_without_scores_returns_bare_documents_and_defaults_apply():
    client, _ = make_client()
    r = client.post("/retrieve", json={"queries": ["a"], "topk": 3, "return_scores": False})
    assert r.json() == {"result": [expected("a", scores=False)]}
    # As in Search-R1's server: topk and return_scores may be left out (test_topk_defaults_to_search_r1s_3).
    assert client.post("/retrieve", json={"queries": ["a"]}).json() == {"result": [expected("a", scores=False)]}
    nulls = {"queries": ["a"], "topk": None, "return_scores": None}
    assert client.post("/retrieve", json=nulls).json() == {"result": [expected("a", scores=False)]}
    assert client.post("/retrieve", json={"queries": []}).json() == {"result": []}


def test_extras_reach_the_backend_aligned_with_their_queries():
    client, backend = make_client()
    body = {"queries": ["q0", "q1"], "topk": 1, "return_scores": True, "questions": ["Who?", "Where?"],
            "golden_answers": [["Ann", "Anna"], ["Lima"]], "noisy": [True, False],
            "sample_ids": ["s0", "s1"], "turns": [0, 2]}
    r = client.post("/retrieve", json=body)
    assert r.json()["result"] == [expected("q0", 1, kind="noisy", question="Who?", answers="Ann|Anna"),
                                  expected("q1", 1, question="Where?", answers="Lima")]
    assert backend.calls == [[
        SearchRequest("q0", "Who?", ("Ann", "Anna"), noisy=True, sample_id="s0", turn=0),
        SearchRequest("q1", "Where?", ("Lima",), noisy=False, sample_id="s1", turn=2),
    ]]


def test_noise_kinds_are_drawn_reproducibly_from_the_curriculum():
    client, backend = make_client(seed=7)
    ids = [f"sample-{i}" for i in range(40)]
    body = {"queries": ["q"] * 40, "noise_probability": 0.5, "step": 3, "sample_ids": ids, "turns": [1] * 40}
    client.post("/retrieve", json=body)
    client.post("/retrieve", json=body)
    drawn = [r.noisy for r in backend.calls[0]]
    assert drawn == [is_noisy(7, 3, sid, 1, 0.5) for sid in ids] == [r.noisy for r in backend.calls[1]]
    assert 0 < sum(drawn) < 40

    client.post("/retrieve", json={"queries": ["a", "b"], "noise_probability": 1.0})
    assert [r.noisy for r in backend.calls[-1]] == [True, True]
    client.post("/retrieve", json={"queries": ["a", "b"], "noise_probability": 0})
    assert [r.noisy for r in backend.calls[-1]] == [False, False]

    # Nothing said: serve.noise_probability, sample id = the query's number on this server, step and turn 0.
    client, backend = make_client(noise_probability=0.5, seed=3)
    client.post("/retrieve", json={"queries": ["q"] * 30})
    assert [r.noisy for r in backend.calls[0]] == [is_noisy(3, 0, i, 0, 0.5) for i in range(30)]
    for _ in range(30):  # one query per request (veRL's search tool): the count goes on, the draws differ
        client.post("/retrieve", json={"queries": ["q"]})
    singles = [call[0].noisy for call in backend.calls[1:]]
    assert singles == [is_noisy(3, 0, i, 0, 0.5) for i in range(30, 60)] and 0 < sum(singles) < 30
    client, backend = make_client(noise_probability=1.0)
    client.post("/retrieve", json={"queries": ["a"]})
    assert backend.calls[0][0].noisy


# A fact of Search-R1's search_r1/search/retrieval_server.py: `parser.add_argument("--topk", type=int,
# default=3)` becomes `config.retrieval_topk`, and `/retrieve` does `if not request.topk: request.topk =
# config.retrieval_topk`. So a Search-R1 user who leaves topk out gets 3 documents per query.
SEARCH_R1_DEFAULT_TOPK = 3


@pytest.mark.parametrize(("body", "cfg", "n"), [
    ({"queries": ["a"]}, {}, SEARCH_R1_DEFAULT_TOPK),
    ({"queries": ["a"], "topk": None}, {}, SEARCH_R1_DEFAULT_TOPK),
    ({"query": "a"}, {}, SEARCH_R1_DEFAULT_TOPK),  # ZeroSearch's wiki form: top_k left out
    ({"queries": ["a"]}, {"default_topk": 4}, 4),
    ({"query": "a", "top_k": None}, {"default_topk": 1}, 1),
    ({"queries": ["a"], "topk": 5}, {}, 5),
    ({"query": "a", "top_k": 2}, {}, 2),
    ({"queries": ["a"], "topk": 9}, {}, 5),  # never more than the backend wrote
])
def test_topk_defaults_to_search_r1s_3(body, cfg, n):
    client, _ = make_client(ScriptedBackend(n=5), **cfg)
    reply = client.post("/retrieve", json=body).json()
    assert len(reply if "query" in body else reply["result"][0]) == n


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"topk": 3}, 422, "missing field 'queries'"),
    ({"queries": "one query"}, 422, "'queries' must be a list"),
    ({"queries": ["ok", 3]}, 422, "queries[1] must be a string"),
    ({"queries": ["a"], "topk": 0}, 422, "'topk' must be an integer >= 1"),
    ({"queries": ["a"], "topk": "5"}, 422, "'topk'"),
    ({"queries": ["a"], "topk": True}, 422, "'topk'"),
    ({"queries": ["a"], "return_scores": "yes"}, 422, "'return_scores'"),
    ({"queries": ["a"], "return_scores": 0}, 422, "'return_scores' must be true or false, got 0"),
    ({"queries": ["a"], "topk": "x" * 500}, 422, "got 'xxx"),
    ({"queries": ["a", "b"], "questions": ["only one"]}, 422, "'questions' holds 1 items for 2 queries"),
    ({"queries": ["a"], "golden_answers": ["Lima"]}, 422, "golden_answers[0] must be a list of strings"),
    ({"queries": ["a"], "golden_answers": [["Lima"], ["x"]]}, 422, "'golden_answers' holds 2 items"),
    ({"queries": ["a"], "noisy": [1]}, 422, "noisy[0] must be true or false"),
    ({"queries": ["a"], "noise_probability": 1.5}, 422, "'noise_probability' must be a number in [0, 1]"),
    ({"queries": ["a"], "noisy": [True], "noise_probability": 0.5}, 422, "not both"),
    ({"queries": ["a"], "step": -1}, 422, "'step'"),
    ({"queries": ["a"], "turns": [0, 1]}, 422, "'turns' holds 2 items"),
    ({"queries": ["a"], "sample_ids": [5]}, 422, "sample_ids[0] must be a string"),
    ({"queries": ["a"], "golden_answer": [["x"]]}, 422, "unknown field(s) 'golden_answer'"),
    (["a", "b"], 422, "must be a JSON object"),
    ({"queries": ["q"] * 9}, 413, "at most 8"),
    # ZeroSearch's wiki form, {"query", "top_k"}
    ({"query": 3}, 422, "'query' must be a string, got int"),
    ({"query": "a", "top_k": 0}, 422, "'top_k' must be an integer >= 1, got 0"),
    ({"query": "a", "topk": 2}, 422, "unknown field(s) 'topk' in ZeroSearch's wiki form; valid: query, top_k"),
    ({"query": "a", "queries": ["b"]}, 422, "unknown field(s) 'query'"),
])
def test_bad_requests_get_a_4xx_naming_the_field(body, status, fragment):
    client, backend = make_client(max_queries=8)
    r = client.post("/retrieve", json=body)
    assert r.status_code == status
    assert fragment in r.json()["detail"]
    assert backend.calls == []


def test_malformed_json_is_a_400():
    client, _ = make_client()
    r = client.post("/retrieve", content=b'{"queries": ["a"', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["detail"]


def test_a_failing_query_does_not_fail_its_neighbours():
    client, backend = make_client()
    r = client.post("/retrieve", json={"queries": ["a", "FAIL b", "c", "WRONG d"], "topk": 3, "return_scores": True})
    assert r.status_code == 200
    data = r.json()
    assert data["result"][0] == expected("a") and data["result"][2] == expected("c")
    for i in (1, 3):
        assert data["result"][i] == [{"document": {"id": "search-failed", "contents": data["result"][i][0]["document"]
                                                   ["contents"]}, "score": 0.0}]
        assert data["result"][i][0]["document"]["contents"].startswith('"Search failed"\n')
    assert data["errors"][0] is None and data["errors"][2] is None
    assert "scripted failure on ['FAIL b']" in data["errors"][1]
    assert "list of Document" in data["errors"][3]
    # The batch, then each query alone.
    assert [[r.query for r in call] for call in backend.calls] == [["a", "FAIL b", "c", "WRONG d"], ["a"], ["FAIL b"],
                                                                   ["c"], ["WRONG d"]]
    stats = client.get("/stats").json()
    assert (stats["failed_queries"], stats["batch_fallbacks"], stats["errors"]) == (2, 1, 0)


def test_a_nan_score_fails_only_its_query():
    client, _ = make_client()
    data = client.post("/retrieve", json={"queries": ["NAN", "ok"], "topk": 1, "return_scores": True}).json()
    assert data["result"][0][0]["document"]["id"] == "search-failed" and data["result"][1] == expected("ok", 1)
    assert "has score nan" in data["errors"][0]
    # Without scores the NaN is never sent, so nothing fails.
    assert client.post("/retrieve", json={"queries": ["NAN"], "topk": 1}).json()["result"][0][0]["id"] == "NAN#0"


def test_a_single_failing_query_is_not_sent_twice():
    client, backend = make_client()
    data = client.post("/retrieve", json={"queries": ["FAIL"], "topk": 2}).json()
    assert data["result"][0][0]["id"] == "search-failed" and set(data["result"][0][0]) == {"id", "contents"}
    assert data["errors"] == ["RuntimeError: scripted failure on ['FAIL']"]
    assert len(backend.calls) == 1


def test_health_stats_and_prometheus_metrics():
    client, _ = make_client()
    assert client.get("/health").json() == {"status": "ok", "backend": "scripted"}
    client.post("/retrieve", json={"queries": ["a", "b"], "topk": 1})
    client.post("/retrieve", json={"queries": ["FAIL", "c"], "topk": 1})
    client.post("/retrieve", json={"topk": 1})
    client.post("/retrieve", content=b"nope")
    stats = client.get("/stats").json()
    assert stats["backend"] == "scripted"
    assert (stats["requests"], stats["queries"], stats["errors"], stats["failed_queries"]) == (4, 4, 2, 1)
    assert stats["responses"] == {"200": 2, "400": 1, "422": 1}
    lat = stats["latency_s"]
    assert lat["window"] == 4 and 0 < lat["p50"] <= lat["p95"] and lat["mean"] > 0
    assert stats["backend_metrics"] == {"search/queries": 6.0}  # 2 + the batch of 2 + 2 one by one

    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in r.text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) zerosearch_\w+ .+", line)
            continue
        name, value = line.rsplit(" ", 1)
        assert re.fullmatch(r'zerosearch_\w+(\{\w+="[^"]*"(,\w+="[^"]*")*\})?', name)
        samples[name] = float(value)
    assert samples["zerosearch_retrieve_requests_total"] == 4
    assert samples["zerosearch_retrieve_errors_total"] == 2
    assert samples['zerosearch_retrieve_responses_total{code="422"}'] == 1
    assert samples["zerosearch_retrieve_queries_total"] == 4
    assert samples["zerosearch_retrieve_failed_queries_total"] == 1
    assert samples["zerosearch_retrieve_latency_seconds_count"] == 4
    assert samples['zerosearch_retrieve_latency_seconds{quantile="0.95"}'] == lat["p95"]
    assert samples['zerosearch_backend_metric{backend="scripted",name="search/queries"}'] == 6


# ---------------------------------------------------------------- a real server on 127.0.0.1


@pytest.fixture(scope="module")
def live():
    backend = ScriptedBackend()
    with serve_in_thread(create_app(backend, ServeConfig(max_queries=8))) as url:
        yield url, backend


@pytest.mark.parametrize("return_scores", [True, False])
def test_a_search_r1_client_over_http(live, return_scores):
    url, _ = live
    # What Search-R1's `batch_search` does: POST the batch, read `result`, format the contents.
    payload = {"queries": ["capital of peru", "highest mountain"], "topk": 2, "return_scores": return_scores}
    r = httpx.post(f"{url}/retrieve", json=payload, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    result = r.json()["result"]
    assert result == [expected(q, 2, scores=return_scores) for q in payload["queries"]]
    docs = [[item["document"] if return_scores else item for item in per_query] for per_query in result]
    titles = [d["contents"].split("\n")[0].strip('"') for d in docs[0]]
    assert titles == ["capital of peru 0", "capital of peru 1"]


def test_zerosearch_s_wiki_client_over_http(live):
    url, _ = live
    # Alibaba-NLP/ZeroSearch llm_agent/generation.py, `retrieve_from_wiki`, verbatim but for the host and
    # httpx for requests: one query in, a list of {"text"} out, rendered as "Doc i: text" lines.
    payload = {"query": "capital of peru", "top_k": 2}
    response = httpx.post(f"{url}/retrieve", json=payload, timeout=10)
    doc_texts = "\n".join([f"Doc {i + 1}: {doc['text']}" for i, doc in enumerate(response.json())])
    assert response.status_code == 200
    assert doc_texts == ("Doc 1: (Title: capital of peru 0) useful doc 0; question=; answers=\n"
                         "Doc 2: (Title: capital of peru 1) useful doc 1; question=; answers=")
    assert response.json()[0] == {"id": "capital of peru#0", "text": "(Title: capital of peru 0) useful doc 0; "
                                                                      "question=; answers="}


def test_a_failed_wiki_query_gets_the_failure_document():
    client, _ = make_client()
    r = client.post("/retrieve", json={"query": "FAIL", "top_k": 2})
    assert r.status_code == 200
    assert r.json() == [{"id": "search-failed", "text": "(Title: Search failed) The search engine could not answer "
                                                        "this query (RuntimeError: scripted failure on ['FAIL'])."}]
    assert client.get("/stats").json()["failed_queries"] == 1


class TitledPages:
    """A simulator LLM whose page has a titled and an untitled document (``records.page_text``'s form)."""

    def generate(self, messages, sampling):
        return [Completion("Doc 1: (Title: Lima) Lima is the capital of Peru.\nDoc 2: Peru is in South America.")
                for _ in messages]

    def close(self):
        pass


def passages2string(retrieval_result) -> str:
    """Search-R1's search_r1/llm_agent/generation.py `_passages2string`, verbatim (ZeroSearch ships the same)."""
    format_reference = ''
    for idx, doc_item in enumerate(retrieval_result):
        content = doc_item['document']['contents']
        title = content.split("\n")[0]
        text = "\n".join(content.split("\n")[1:])
        format_reference += f"Doc {idx+1}(Title: {title}) {text}\n"
    return format_reference


def test_simulated_documents_reach_a_search_r1_client_with_their_titles():
    with serve_in_thread(create_app(SimulatedBackend(TitledPages()), ServeConfig())) as url:
        payload = {"queries": ["capital of peru"], "topk": 2, "return_scores": True}
        (docs,) = httpx.post(f"{url}/retrieve", json=payload, timeout=10).json()["result"]
        wiki = httpx.post(f"{url}/retrieve", json={"query": "capital of peru", "top_k": 2}, timeout=10).json()
    # The FlashRAG/wiki-18 contents form, as a real document's: "Title" on the first line, then the text.
    assert [d["document"]["contents"] for d in docs] == ['"Lima"\nLima is the capital of Peru.',
                                                         "Peru is in South America."]
    assert passages2string(docs[:1]) == 'Doc 1(Title: "Lima") Lima is the capital of Peru.\n'
    assert [d["text"] for d in wiki] == ["(Title: Lima) Lima is the capital of Peru.", "Peru is in South America."]


class GatedBackend(ScriptedBackend):
    """Each search sets ``entered``, then holds until the test sets ``release`` (30 s at most)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def search(self, requests):
        self.entered.set()
        self.release.wait(30)
        return super().search(requests)


def test_a_slow_backend_does_not_block_the_event_loop():
    backend = GatedBackend()

    async def probe(url: str) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            pending = asyncio.create_task(client.post(f"{url}/retrieve", json={"queries": ["slow"]}))
            assert await asyncio.to_thread(backend.entered.wait, 30)  # the search is under way in the backend
            assert (await client.get(f"{url}/health")).status_code == 200
            assert not pending.done()  # health was answered while the search still held
            backend.release.set()
            assert (await pending).status_code == 200

    with serve_in_thread(create_app(backend, ServeConfig())) as url:
        asyncio.run(probe(url))


def test_200_concurrent_requests_with_bad_ones_mixed_in():
    backend = ScriptedBackend(delay_s=0.002)

    def request(i: int) -> tuple[dict, str]:
        """(httpx keyword arguments, what the answer must be) for request number ``i``."""
        if i % 10 == 3:
            return {"content": b'{"queries": ["broken"', "headers": {"content-type": "application/json"}}, "400"
        if i % 10 == 5:
            return {"json": {"queries": ["q"] * 9, "topk": 1}}, "413"
        if i % 10 == 7:
            return {"json": {"queries": [f"q{i}", 7], "topk": 1}}, "422"
        if i % 10 == 9:
            return {"json": {"queries": [f"q{i}", "FAIL", f"r{i}"], "topk": 2, "return_scores": True}}, "fail"
        return {"json": {"queries": [f"q{i}", f"r{i}"], "topk": 2, "return_scores": True}}, "ok"

    async def load(url: str) -> list[tuple[str, httpx.Response]]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as client:
            plans = [request(i) for i in range(200)]
            replies = await asyncio.wait_for(
                asyncio.gather(*(client.post("/retrieve", **kw) for kw, _ in plans)), timeout=25)
            assert (await client.get("/health")).json() == {"status": "ok", "backend": "scripted"}
            stats = (await client.get("/stats")).json()
        assert stats["requests"] == 200 and stats["errors"] == 60 and stats["failed_queries"] == 20
        return [(want, r) for (_, want), r in zip(plans, replies, strict=True)]

    with serve_in_thread(create_app(backend, ServeConfig(max_queries=8))) as url:
        answers = asyncio.run(load(url))
    for i, (want, r) in enumerate(answers):
        if want in ("400", "413", "422"):
            assert r.status_code == int(want), (i, r.text)
            assert r.json()["detail"]
        elif want == "ok":
            assert r.status_code == 200
            assert r.json() == {"result": [expected(f"q{i}", 2), expected(f"r{i}", 2)]}
        else:
            data = r.json()
            assert r.status_code == 200
            assert data["result"][0] == expected(f"q{i}", 2) and data["result"][2] == expected(f"r{i}", 2)
            assert data["result"][1][0]["document"]["id"] == "search-failed"
            assert data["errors"][0] is None and "FAIL" in data["errors"][1] and data["errors"][2] is None
