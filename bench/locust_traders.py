"""The simulated trader of ``bench/load.py`` (a locust file: ``locust -f bench/locust_traders.py``).

Only locust's own processes import this file: locust patches the standard library for gevent
on import, so nothing else in the project may import it (``bench/load.py`` runs locust as a
subprocess and reads its CSV files).

Each simulated user is one signed-in trader of the REST API at human pace (2 to 10 s between
actions): polls a price, lists positions, reads the account, sometimes places a small market
order (some with a stop-loss and a take-profit) and sometimes closes a position. It also holds
one WebSocket (``/ws``), authenticated as the same trader and subscribed to one price symbol
and to its ``orders`` and ``positions``, and reports, as locust request events of type ``WS``:

- ``price lag``: receive time minus the ``ts`` of each live ``price_update`` (the feed's quote
  time; client and server share this machine's clock), in ms;
- ``order_update after POST``: from sending ``POST /orders`` to the first ``order_update`` of
  that order on the socket;
- failures: an unexpected close, an ``error`` message.

Opening the sockets (handshake to ``subscribed`` with every snapshot in) happens during the
ramp-up, whose statistics locust resets: each process writes those times and failures, and
the unexpected closes and ``error`` messages of the whole run, to
``$LOAD_RESULTS_DIR/connects-<pid>.json`` when it quits.

Input, from the environment: ``LOAD_TRADERS_FILE`` (JSON ``{"tokens": [access JWT, ...],
"symbols": [...]}``, one token per user: users take them in order, worker ``i`` of
``LOAD_WORKERS`` the ``i``-th of every ``LOAD_WORKERS``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import uuid
from datetime import datetime
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import gevent
import simple_websocket
from locust import FastHttpUser, between, events, task

WS_TYPE = "WS"
PRICE_LAG = "price lag (receive - ts)"
ORDER_EVENT = "order_update after POST /orders"
USER_CHANNELS = ("orders", "positions")
PONG = json.dumps({"op": "pong"})
SL_TP_SHARE = 0.4  # of market orders sent with a stop-loss and a take-profit
SL_TP_DISTANCE = Decimal("0.05")  # 5 % from the mid: inside the liquidation price at leverage 5

with open(os.environ["LOAD_TRADERS_FILE"]) as _handle:
    _TRADERS: dict[str, Any] = json.load(_handle)
TOKENS: list[str] = _TRADERS["tokens"]
SYMBOLS: list[str] = _TRADERS["symbols"]
WORKERS = int(os.environ.get("LOAD_WORKERS", "1"))
_taken = count()
# Over the whole run, ramp-up included (locust's statistics are reset after it).
CONNECTS: dict[str, Any] = {
    "attempts": 0,
    "failed": 0,
    "ms": [],
    "errors": {},
    "closed": 0,
    "error_messages": {},
}


def _token_next(worker_index: int) -> str:
    """The next trader's token of this worker process (distinct across workers)."""
    return TOKENS[(next(_taken) * WORKERS + worker_index) % len(TOKENS)]


def _record(name: str, milliseconds: float, *, length: int = 0, exception: Exception | None = None) -> None:
    events.request.fire(
        request_type=WS_TYPE,
        name=name,
        response_time=milliseconds,
        response_length=length,
        exception=exception,
        context={},
    )


@events.quitting.add_listener
def _connects_write(environment: Any, **_: Any) -> None:
    if CONNECTS["attempts"] and (directory := os.environ.get("LOAD_RESULTS_DIR")):
        Path(directory, f"connects-{os.getpid()}.json").write_text(json.dumps(CONNECTS))


def _outcome(response: Any) -> None:
    """Success below 400; otherwise a failure named by status and the API's error ``code``."""
    if response.ok:
        response.success()
        return
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "no error body"
    response.failure(f"{response.status_code} {code}")


class WebSocketProblem(Exception):
    """The socket did something a trader's app would see as a failure."""


class Trader(FastHttpUser):
    wait_time = between(2, 10)

    def on_start(self) -> None:
        runner = self.environment.runner
        self.token = _token_next(getattr(runner, "worker_index", 0) or 0)
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.symbol = random.choice(SYMBOLS)
        self.mids: dict[str, Decimal] = {}
        self.orders_sent: dict[str, float] = {}  # client_order_id -> when POST /orders was sent
        self.ws: Any = None  # simple_websocket.Client (untyped)
        self.reader: gevent.Greenlet | None = None
        self.stopping = False
        self._ws_open()

    def on_stop(self) -> None:
        self.stopping = True
        if self.ws is not None:
            with contextlib.suppress(simple_websocket.ConnectionClosed):
                self.ws.close()
        if self.reader is not None:
            self.reader.kill(block=False)

    # --- WebSocket ----------------------------------------------------------------------

    def _ws_open(self) -> None:
        url = str(self.host).replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        channels = [f"prices:{self.symbol}", *USER_CHANNELS]
        started = time.perf_counter()
        try:
            ws = simple_websocket.Client.connect(url)
            ws.send(json.dumps({"op": "auth", "token": self.token}))
            ws.send(json.dumps({"op": "subscribe", "channels": channels}))
            waiting, subscribed = set(channels), False
            while waiting or not subscribed:
                raw = ws.receive(timeout=60)
                if raw is None:
                    raise WebSocketProblem("no subscribed and snapshots within 60 s")
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "error":
                    raise WebSocketProblem(f"error {message.get('code')}: {message.get('message')}")
                if kind == "subscribed":
                    subscribed = True
                elif kind == "ping":  # a slow server may ping before the snapshots are in
                    ws.send(PONG)
                if message.get("snapshot"):
                    waiting.discard(message.get("channel"))
                    self._price_note(message)
        except (OSError, ValueError, simple_websocket.errors.SimpleWebsocketError, WebSocketProblem) as exc:
            CONNECTS["attempts"] += 1
            CONNECTS["failed"] += 1
            CONNECTS["errors"][repr(exc)] = CONNECTS["errors"].get(repr(exc), 0) + 1
            return
        CONNECTS["attempts"] += 1
        CONNECTS["ms"].append((time.perf_counter() - started) * 1000)
        self.ws = ws
        self.reader = gevent.spawn(self._ws_read)

    def _ws_read(self) -> None:
        assert self.ws is not None
        while True:
            try:
                raw = self.ws.receive()
            except (OSError, simple_websocket.ConnectionClosed) as exc:
                if not self.stopping:
                    CONNECTS["closed"] += 1
                    _record("unexpected close", 0, exception=WebSocketProblem(repr(exc)))
                return
            received = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "price_update":
                data = self._price_note(message)
                if data is not None and not message.get("snapshot"):
                    sent = datetime.fromisoformat(data["ts"]).timestamp()
                    _record(PRICE_LAG, (received - sent) * 1000, length=len(raw))
            elif kind == "ping":
                self.ws.send(PONG)
            elif kind == "error":
                code = str(message.get("code"))
                CONNECTS["error_messages"][code] = CONNECTS["error_messages"].get(code, 0) + 1
                _record(
                    "error message",
                    0,
                    exception=WebSocketProblem(f"{message.get('code')}: {message.get('message')}"),
                )
            elif kind == "order_update":
                client_order_id = str((message.get("data") or {}).get("client_order_id"))
                sent_at = self.orders_sent.pop(client_order_id, None)
                if sent_at is not None:
                    _record(ORDER_EVENT, (received - sent_at) * 1000, length=len(raw))

    def _price_note(self, message: dict[str, Any]) -> dict[str, Any] | None:
        data: dict[str, Any] | None = message.get("data")
        if message.get("type") == "price_update" and data:
            self.mids[message["channel"].removeprefix("prices:")] = Decimal(data["mid"])
        return data

    # --- REST: the journey mix ---------------------------------------------------------

    @task(6)
    def price(self) -> None:
        symbol = random.choice(SYMBOLS)
        response = self.client.get(
            f"/api/v1/prices/{symbol}", headers=self.headers, name="/api/v1/prices/{symbol}"
        )
        if response.ok and response.json().get("mid"):
            self.mids[symbol] = Decimal(response.json()["mid"])

    @task(3)
    def positions(self) -> None:
        self.client.get("/api/v1/positions", headers=self.headers, name="/api/v1/positions")

    @task(3)
    def account(self) -> None:
        self.client.get("/api/v1/account", headers=self.headers, name="/api/v1/account")

    @task(2)
    def order(self) -> None:
        # A stop-loss and take-profit are set against the live price on the trader's socket.
        protected = self.symbol in self.mids and random.random() < SL_TP_SHARE
        symbol = self.symbol if protected else random.choice(SYMBOLS)
        side = random.choice(("long", "short"))
        client_order_id = f"load-{uuid.uuid4().hex[:16]}"
        body: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "type": "market",
            "collateral": "10",
            "leverage": "5",
            "client_order_id": client_order_id,
            "rounding": "down",
        }
        if protected:
            mid = self.mids[symbol]
            below, above = mid * (1 - SL_TP_DISTANCE), mid * (1 + SL_TP_DISTANCE)
            body["stop_loss"], body["take_profit"] = (
                (str(below), str(above)) if side == "long" else (str(above), str(below))
            )
        self.orders_sent[client_order_id] = time.time()
        with self.client.post(
            "/api/v1/orders", json=body, headers=self.headers, name="/api/v1/orders", catch_response=True
        ) as response:
            if not response.ok:
                self.orders_sent.pop(client_order_id, None)
            _outcome(response)

    @task(1)
    def close(self) -> None:
        """What the app does when the trader closes a position: the list, then one close."""
        response = self.client.get("/api/v1/positions", headers=self.headers, name="/api/v1/positions")
        if not response.ok:
            return
        positions = response.json().get("results") or []
        if positions:
            position = random.choice(positions)
            with self.client.post(
                f"/api/v1/positions/{position['id']}/close",
                json={"type": "market"},
                headers=self.headers,
                name="/api/v1/positions/{id}/close",
                catch_response=True,
            ) as response:
                _outcome(response)
