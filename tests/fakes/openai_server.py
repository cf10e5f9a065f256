"""A real loopback HTTP server playing an OpenAI-compatible LLM, with injectable faults.

    with FakeOpenAIServer(reply=str.upper, delay_s=0.2) as server:
        client = OpenAIChatClient([server.base_url], "fake-model")
        ...
        assert server.chat_bodies()[0]["messages"][0]["content"] == "hello"

It serves ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/completions`` (text, cut at
``stop``) on 127.0.0.1 (ephemeral port), one thread per connection (it keeps hundreds of delayed requests in
flight at once), and records every request. Faults apply to completions only, checked in this order:
``hang`` (never answer), ``drop_first`` (close the connection without replying), ``fail_first`` /
``fail_if`` (HTTP 500), ``malformed_if`` (a reply without content). ``gather=n`` holds the first completions
until ``n`` of them are in flight at once (10 s at most in all), then answers every one: overlap is then seen in
``max_in_flight`` however slow the machine, where a delay would only make it likely.
Token usage is counted in whitespace-separated words.

Leaving the context stops everything: hung and delayed handlers are released, open connections are
shut, and every handler thread is joined, so no test leaves a thread behind.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GATHER_WAIT_S = 10.0  # how long `gather` holds a completion; a bound against a hung test, not a measurement


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # parsed JSON, or None for a GET


def unused_base_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class FakeOpenAIServer:
    """An OpenAI-compatible chat server answering ``reply(user_message)`` (default: echo)."""

    def __init__(
        self,
        reply: Callable[[str], str] = lambda message: message,
        *,
        models: Sequence[str] = ("fake-model",),
        delay_s: float = 0.0,
        fail_first: int = 0,
        fail_if: Callable[[str], bool] | None = None,
        drop_first: int = 0,
        hang: bool = False,
        malformed_if: Callable[[str], bool] | None = None,
        gather: int = 0,
    ) -> None:
        self.reply, self.models, self.delay_s = reply, tuple(models), delay_s
        self.hang, self.drop_first, self.fail_first = hang, drop_first, fail_first
        self.fail_if, self.malformed_if, self.gather = fail_if, malformed_if, gather
        self.max_in_flight = 0  # most chat requests handled at the same time
        self._requests: list[RecordedRequest] = []
        self._chats = self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._gathered = threading.Event()  # set once `gather` completions were in flight together
        self._connections: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """Where it listens (kept after ``stop``, for assertions on error messages)."""
        assert self._port, "the server was never started"
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def chat_bodies(self) -> list[Any]:
        return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    def start(self) -> FakeOpenAIServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None or self._thread is None:
            return
        with self._lock:
            self._stopping.set()  # releases hung and delayed handlers
            self._gathered.set()
            connections = list(self._connections)
        self._httpd.shutdown()
        for conn in connections:  # unblocks handlers waiting on idle keep-alive connections
            _shut(conn)
        self._httpd.server_close()  # joins every handler thread
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- called from handler threads

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._lock:
            if not opened:
                self._connections.discard(conn)
            elif self._stopping.is_set():
                _shut(conn)
            else:
                self._connections.add(conn)

    def _record(self, request: RecordedRequest) -> int:
        """Record a request; for chat completions, return its 0-based arrival index."""
        with self._lock:
            self._requests.append(request)
            if request.path not in ("/v1/chat/completions", "/v1/completions"):
                return -1
            self._chats += 1
            return self._chats - 1

    def _count_in_flight(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            if self.gather and self._in_flight >= self.gather:
                self._gathered.set()

    def _chat(self, index: int, body: Any) -> tuple[int, dict[str, Any]] | None:
        """(status, JSON reply) for one chat request, or None to drop the connection."""
        if self.hang:
            self._stopping.wait()
            return None
        if self.gather and not self._gathered.wait(GATHER_WAIT_S):
            self._gathered.set()  # never gathered: the test fails on max_in_flight, without a wait per request
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        if index < self.drop_first:
            return None
        completion = "prompt" in body  # POST /v1/completions: plain text in, text out, cut at `stop`
        message = body["prompt"] if completion else body["messages"][-1]["content"]
        if index < self.fail_first or (self.fail_if is not None and self.fail_if(message)):
            return 500, {"error": {"message": "injected failure", "type": "server_error"}}
        text = None if self.malformed_if is not None and self.malformed_if(message) else self.reply(message)
        if completion:
            for stop in body.get("stop") or ():
                text = text.split(stop)[0] if text is not None else None
            return 200, {"id": f"cmpl-{index}", "object": "text_completion", "model": body.get("model"),
                         "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": len(message.split()),
                                   "completion_tokens": len((text or "").split())}}
        return 200, {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(message.split()), "completion_tokens": len((text or "").split()),
                      "total_tokens": len(message.split()) + len((text or "").split())},
        }


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of clients connect at once
    daemon_threads = False  # so that server_close joins the handler threads
    fake: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.fake._stopping.is_set():  # a write to a connection shut at stop is expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle would hold the body ~40 ms
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, opened=True)

    def finish(self) -> None:
        self.server.fake._track(self.connection, opened=False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        fake._record(RecordedRequest("GET", self.path, self._headers(), None))
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        index = fake._record(RecordedRequest("POST", self.path, self._headers(), body))
        if index < 0:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if body is None:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        fake._count_in_flight(+1)
        try:
            answer = fake._chat(index, body)
        finally:
            fake._count_in_flight(-1)
        if answer is None:
            self.close_connection = True  # the socket closes without a reply
        else:
            self._send(*answer)

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
