"""Simulator throughput: ``OpenAIChatClient`` against the original ZeroSearch request pattern.

The original ZeroSearch sends one synchronous request per search query from a pool of 10 worker threads
(``ThreadPoolExecutor(max_workers=10)``), so a step's 320 queries (64 prompts x 5 samples) go out 10 at a
time. Our reference keeps that pattern but is kinder to it than the original, which built a new OpenAI
client (and connection) per query: its threads share one keep-alive ``httpx.Client``. ``OpenAIChatClient``
keeps up to ``--concurrency`` requests in flight. Both talk to the same loopback server (uvicorn + Starlette
in a subprocess) whose every reply takes a fixed ``--latency``, standing in for an sglang server. A fixed
latency favours neither side: a real server answers each request of a big batch more slowly than one of
ten, but computes the whole batch in one pass.

    python benchmarks/bench_simulator.py --latency 0.1 --queries 320 --concurrency 320

The last two lines printed are the set-up (server latency, queries per step, concurrency) and the ratio of the
median times. Other jobs on the machine, and the server subprocess itself, take CPU from the client: compare
ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from zerosearch_rl.llm.base import Sampling, chat_messages
from zerosearch_rl.llm.openai_http import OpenAIChatClient

MODEL = "bench-simulator"
SAMPLING = Sampling(temperature=0.8, top_p=None, max_new_tokens=600)  # the original's: no top_p
DOCS = "\n".join(f"Doc {i}: " + " ".join(["lorem"] * 30) for i in range(1, 6))  # five docs of ~30 words


def serve(latency: float) -> None:
    """Run the fake simulator server; print its port on stdout once it accepts connections."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.sleep(latency)
        prompt = body["messages"][0]["content"]
        return JSONResponse({
            "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": DOCS}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(DOCS.split())},
        })

    app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])])
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # reply to a blocking client stalls ~40 ms (Nagle's algorithm against delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)  # connections made before uvicorn starts wait in the backlog
    print(sock.getsockname()[1], flush=True)
    # The HTTP stack of a production server (sglang runs uvicorn on uvloop with the httptools parser): the
    # pure-Python h11 parser would make this stand-in server, not the clients, the thing being measured.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", backlog=4096,
                            http="httptools")
    import uvloop

    uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))


def reference(http: httpx.Client, base_url: str, queries: list[str], threads: int) -> list[str]:
    """The original design: one blocking request per query, ``threads`` workers."""
    def one(query: str) -> str:
        response = http.post(f"{base_url}/chat/completions", json={
            "model": MODEL, "messages": chat_messages(query, ""),
            "temperature": SAMPLING.temperature, "max_tokens": SAMPLING.max_new_tokens,
        })
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, queries))


def ours(client: OpenAIChatClient, queries: list[str]) -> list[str]:
    completions = client.generate(queries, SAMPLING)
    failed = [c.error for c in completions if not c.ok]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed, first: {failed[0]}")
    return [c.text or "" for c in completions]


def timed(run: Callable[[], list[str]], repeats: int, n: int) -> list[float]:
    """Seconds per repetition, after one untimed warm-up run (connections, imports)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
        assert len(out) == n and out[0] == DOCS
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server takes per request")
    parser.add_argument("--queries", type=int, default=320, help="queries per step (64 prompts x 5 samples)")
    parser.add_argument("--concurrency", type=int, default=320, help="requests our client keeps in flight")
    parser.add_argument("--threads", type=int, default=10, help="worker threads of the reference")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server subprocess
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.latency)
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        if not port:
            raise SystemExit("the benchmark server did not start")
        base_url = f"http://127.0.0.1:{port}/v1"
        queries = [f"query number {i} about something" for i in range(args.queries)]
        with httpx.Client(timeout=60.0) as http:
            ref = timed(lambda: reference(http, base_url, queries, args.threads), args.repeats, args.queries)
        with OpenAIChatClient([base_url], MODEL, concurrency=args.concurrency, timeout_s=60.0) as client:
            new = timed(lambda: ours(client, queries), args.repeats, args.queries)
        for name, times in ((f"reference ({args.threads} threads, sync)", ref),
                            (f"OpenAIChatClient (concurrency {args.concurrency})", new)):
            print(f"{name:40s} {statistics.median(times):7.3f} s   runs: {' '.join(f'{t:.3f}' for t in times)}")
        print(f"set-up: loopback server answering in {args.latency:.3f} s per request; {args.queries} queries a step; "
              f"concurrency {args.concurrency} (reference: {args.threads} threads); median of {args.repeats} runs")
        print(f"speed-up vs {args.threads}-thread reference: {statistics.median(ref) / statistics.median(new):.1f}x")
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
