"""A local server speaking Lighter's WebSocket protocol (``/stream``), scripted by the tests.

It greets every connection with ``{"type": "connected"}``, answers each
``order_book/{market}`` subscription with ``subscribed/order_book`` (the market's book as
it stands) and records every message a client sends. A test pushes diffs (which also change
the book served to the next subscriber), pings, error and shutdown frames, drops the
connection, or refuses connections with HTTP 503 while ``accepting`` is false.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

Levels = dict[str, str]  # price -> size, as Lighter writes them


def wait_until(condition: Callable[[], Any], timeout: float = 1.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class FakeLighterStream:
    def __init__(self) -> None:
        self.books: dict[int, dict[str, Levels]] = {}
        self.accepting = True
        self.received: list[dict[str, Any]] = []
        self.connections: list[ServerConnection] = []
        self.subscriptions: list[list[str]] = []  # per connection, the channels subscribed
        self.refused = 0
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # --- scripting ------------------------------------------------------------------------

    def book(self, market_id: int, *, bids: Levels, asks: Levels) -> None:
        """The book the next subscriber to ``order_book/{market_id}`` gets."""
        self.books[market_id] = {"bids": dict(bids), "asks": dict(asks)}

    def update(self, market_id: int, *, bids: Levels | None = None, asks: Levels | None = None) -> None:
        """Send an ``update/order_book`` diff to the current connection (size "0" deletes)."""
        diff = {"bids": dict(bids or {}), "asks": dict(asks or {})}
        book = self.books.setdefault(market_id, {"bids": {}, "asks": {}})
        for side, levels in diff.items():
            for price, size in levels.items():
                if size == "0":
                    book[side].pop(price, None)
                else:
                    book[side][price] = size
        self.send(
            {
                "type": "update/order_book",
                "channel": f"order_book:{market_id}",
                "timestamp": int(time.time() * 1000),
                "order_book": {**_wire(diff), "offset": int(time.time() * 1000)},
            }
        )

    def send(self, message: dict[str, Any]) -> None:
        self.current.send(json.dumps(message))

    def disconnect(self) -> None:
        """Drop the current connection, as a server restart would."""
        self.current.close(code=1012, reason="service restart")

    @property
    def current(self) -> ServerConnection:
        with self._lock:
            return self.connections[-1]

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/stream"

    def subscribed(self, connection: int, channel: str) -> bool:
        with self._lock:
            return len(self.subscriptions) > connection and channel in self.subscriptions[connection]

    def messages(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [message for message in self.received if message.get("type") == kind]

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for connection in self.connections if connection.state.name == "OPEN")

    # --- server ---------------------------------------------------------------------------

    def start(self) -> None:
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._admit)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join(5)

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.accepting:
            return None
        with self._lock:
            self.refused += 1
        return connection.respond(503, "Service Unavailable\n")

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self.connections.append(connection)
            self.subscriptions.append([])
            index = len(self.subscriptions) - 1
        connection.send(json.dumps({"type": "connected"}))
        try:
            for raw in connection:
                message = json.loads(raw)
                with self._lock:
                    self.received.append(message)
                if message.get("type") == "subscribe":
                    channel = message["channel"]
                    with self._lock:
                        self.subscriptions[index].append(channel)
                    self._snapshot(connection, channel)
        except ConnectionClosed:
            pass

    def _snapshot(self, connection: ServerConnection, channel: str) -> None:
        name, _, market = channel.partition("/")
        if name != "order_book" or int(market) not in self.books:
            connection.send(json.dumps({"type": "error", "code": 30005, "message": "Invalid Channel"}))
            return
        book = self.books[int(market)]
        connection.send(
            json.dumps(
                {
                    "type": "subscribed/order_book",
                    "channel": f"order_book:{market}",
                    "timestamp": int(time.time() * 1000),
                    "order_book": {**_wire(book), "offset": 1},
                }
            )
        )


def _wire(book: dict[str, Levels]) -> dict[str, list[dict[str, str]]]:
    return {side: [{"price": p, "size": s} for p, s in levels.items()] for side, levels in book.items()}


@contextmanager
def running_fake() -> Iterator[FakeLighterStream]:
    fake = FakeLighterStream()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
