"""`zerosearch serve` as a user runs it: a real process, answered by a Search-R1 client written from the protocol."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from fakes.openai_server import FakeOpenAIServer
from zerosearch_rl.packaged_assets import asset

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*overrides: str):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "zerosearch_rl", "serve", f"serve.port={port}", *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("serve did not come up within 60 s")


def stop(proc):
    proc.terminate()
    proc.wait(timeout=20)


def test_serve_bm25_answers_a_search_r1_client(tmp_path):
    proc, url = serve("search.backend=bm25", f"search.corpus={asset('mini_corpus.jsonl')}",
                      f"search.index_dir={tmp_path}")
    try:
        reply = httpx.post(f"{url}/retrieve", json={"queries": ["Ada Kowalski born", "Northgate Rail founded"],
                                                    "topk": 2, "return_scores": True}, timeout=10).json()
        assert [len(r) for r in reply["result"]] == [2, 2]
        top = reply["result"][0][0]
        assert top["document"]["contents"].startswith('"Ada Kowalski"\n') and top["score"] > 0
        assert reply["result"][1][0]["document"]["id"] == "company-northgate"
        plain = httpx.post(f"{url}/retrieve", json={"queries": ["Marlow"], "topk": 1, "return_scores": False},
                           timeout=10).json()
        assert set(plain["result"][0][0]) == {"id", "contents"}
    finally:
        stop(proc)


def test_serve_simulated_engine_steered_by_zerosearch_extras():
    def reply(message: str) -> str:
        kind = "useful" if "five useful" in message else "noisy"
        answer = message.split("whose answer is ")[1].split(".\n")[0]
        return "\n".join(f"Doc {i}: {kind} page mentioning {answer if kind == 'useful' else 'nothing'}"
                         for i in range(1, 6))

    with FakeOpenAIServer(reply=reply) as llm:
        proc, url = serve("search.backend=simulate_sft", "simulator.client=openai",
                          f"simulator.base_urls=[{llm.base_url}]")
        try:
            body = {"queries": ["ada birthplace", "ada birthplace"], "topk": 3, "return_scores": True,
                    "questions": ["Where was Ada born?"] * 2, "golden_answers": [["Marlow"], ["Marlow"]],
                    "noisy": [False, True]}
            result = httpx.post(f"{url}/retrieve", json=body, timeout=30).json()["result"]
            assert [len(r) for r in result] == [3, 3]
            assert result[0][0]["document"]["contents"] == "useful page mentioning Marlow"
            assert result[1][0]["document"]["contents"] == "noisy page mentioning nothing"
            # a plain Search-R1 client (no extras) still gets documents
            plain = httpx.post(f"{url}/retrieve", json={"queries": ["x"], "topk": 1}, timeout=30).json()
            assert len(plain["result"][0]) == 1
        finally:
            stop(proc)
