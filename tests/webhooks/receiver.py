"""A real HTTP receiver on 127.0.0.1 with scripted answers, for webhook deliveries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1  # hold the request without answering for ``hang_seconds``


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    port: int
    answers: list[int] = field(default_factory=list)
    default: int = 200
    hang_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?src=test"

    def next_answer(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else self.default

    def webhook_ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


@contextmanager
def running_receiver(answers: list[int] | None = None, **options: Any) -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                )
            status = receiver.next_answer()
            if status == HANG:
                receiver.release.wait(receiver.hang_seconds)
                return
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(port=int(server.server_address[1]), answers=list(answers or []), **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
