"""The ``/ws`` stream end to end: a real daphne on the session's Redis, raw ``websockets`` clients,
orders and prices driven over REST, the way a phone and an operator would.

The module's daphne runs with a short heartbeat (1 s ping, 0.7 s for the pong) so that the
heartbeat is observed within a test's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import socket as socket_module
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ledger.services import balance_adjust
from marqetfi.core.events import publish
from streams.client import StreamClient
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import CeleryWorker, DaphneServer, start_daphne
from trading.models import Order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEARTBEAT_MS = 1000
PONG_TIMEOUT_MS = 700


@pytest.fixture(scope="module")
def stream_server(e2e_env: dict[str, str], e2e_log_dir: Path) -> Iterator[DaphneServer]:
    env = {
        **e2e_env,
        "STREAM_HEARTBEAT_MS": str(HEARTBEAT_MS),
        "STREAM_PONG_TIMEOUT_MS": str(PONG_TIMEOUT_MS),
        "STREAM_PRICE_MAX_PER_SECOND": "4",
        "STREAM_MAX_MESSAGES_PER_SECOND": "20",
    }
    server = start_daphne(env, e2e_log_dir)
    yield server
    server.process.stop()


def token(user: Any, lifetime: timedelta | None = None) -> str:
    access = AccessToken.for_user(user)
    if lifetime is not None:
        access.set_exp(lifetime=lifetime)
    return str(access)


def trader(staff: Any) -> Any:
    user: Any = UserFactory()
    balance_adjust(user=user, amount=Decimal("10000"), reason="e2e funding", actor=staff)
    return user


class Socket:
    """A raw websockets client; a reader thread answers the server's pings (unless told not to),
    so a socket the test is not reading from stays healthy."""

    def __init__(self, server: DaphneServer, path: str = "", answer_pings: bool = True) -> None:
        self.ws: ClientConnection = connect(
            server.ws_url + path, open_timeout=5, close_timeout=1, max_size=None
        )
        self.answer_pings = answer_pings
        self.inbox: queue.Queue[dict[str, Any] | ConnectionClosed] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.hello = self.recv()
        assert self.hello["type"] == "hello"

    def _read(self) -> None:
        while True:
            try:
                message = json.loads(self.ws.recv())
            except ConnectionClosed as closed:
                self.inbox.put(closed)
                return
            if message["type"] == "ping" and self.answer_pings:
                with contextlib.suppress(ConnectionClosed):
                    self.send({"op": "pong"})
                continue
            self.inbox.put(message)

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        try:
            item = self.inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise TimeoutError from None
        if isinstance(item, ConnectionClosed):
            self.inbox.put(item)
            raise item
        return item

    def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(timeout=deadline - time.monotonic())
            if message["type"] == kind:
                return message

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Everything received within ``seconds`` (answered pings left out)."""
        received, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                received.append(self.recv(timeout=left))
            except TimeoutError:
                break
        return received

    def closed_code(self, timeout: float = 5.0) -> tuple[list[dict[str, Any]], int | None]:
        received, deadline = [], time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                received.append(self.recv(timeout=deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return received, closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            pass
        raise AssertionError(f"still open after {timeout} s: {received}")

    def auth(self, user: Any) -> None:
        self.send({"op": "auth", "token": token(user)})
        assert self.recv_type("authenticated")["user_id"] == str(user.pk)

    def subscribe(self, *channels: str) -> list[dict[str, Any]]:
        self.send({"op": "subscribe", "channels": list(channels)})
        subscribed = self.recv_type("subscribed")
        assert set(channels) <= set(subscribed["channels"]), subscribed
        return [self.recv() for _ in channels]  # one snapshot each

    def close(self) -> None:
        self.ws.close()


def set_price(server: DaphneServer, staff: Any, symbol: str, price: str) -> None:
    with server.client(headers={"Authorization": f"Bearer {token(staff)}"}) as client:
        response = client.post("/api/v1/admin/paper/prices", json={"symbol": symbol, "price": price})
    assert response.status_code == 200, response.text


def place(server: DaphneServer, user: Any, **body: Any) -> dict[str, Any]:
    order = {
        "symbol": "BTCUSD",
        "side": "long",
        "type": "market",
        "collateral": "100",
        "leverage": "2",
        **body,
    }
    with server.client(headers={"Authorization": f"Bearer {token(user)}"}) as client:
        response = client.post("/api/v1/orders", json=order)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def events_of(server: DaphneServer, user: Any) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    url: str | None = "/api/v1/events?after_seq=0"
    with server.client(headers={"Authorization": f"Bearer {token(user)}"}) as client:
        while url:
            body = client.get(url).json()
            seen += [(e["seq"], e["type"]) for e in body["results"]]
            url = body["next"]
    return seen


def log_problems(server: DaphneServer) -> list[str]:
    return [
        line
        for line in server.process.output().splitlines()
        if '"level": "ERROR"' in line or "Traceback" in line or "TimeoutError" in line
    ]


# --- prices -----------------------------------------------------------------------------


def test_prices_arrive_on_the_subscribed_symbol_only_and_conflated(
    stream_server: DaphneServer, market: None, staff: Any
) -> None:
    set_price(stream_server, staff, "BTCUSD", "64000")
    socket = Socket(stream_server)
    (snapshot,) = socket.subscribe("prices:BTCUSD")
    assert (snapshot["type"], snapshot["channel"], snapshot["snapshot"]) == (
        "price_update",
        "prices:BTCUSD",
        True,
    )

    set_price(stream_server, staff, "ETHUSD", "3000")
    set_price(stream_server, staff, "BTCUSD", "65000")
    update = socket.recv_type("price_update")
    assert update["channel"] == "prices:BTCUSD" and "snapshot" not in update
    assert abs(Decimal(update["data"]["mid"]) - Decimal("65000")) < 100
    assert set(update["data"]) == {"bid", "ask", "mid", "ts"}

    for price in range(66000, 66010):  # ten ticks at once: at most 4 a second reach the socket
        set_price(stream_server, staff, "BTCUSD", str(price))
    received = socket.drain(1.0)
    assert {m["channel"] for m in received} == {"prices:BTCUSD"}
    assert 1 <= len(received) <= 4
    assert abs(Decimal(received[-1]["data"]["mid"]) - Decimal("66009")) < 100  # the latest wins
    socket.close()


# --- user events ------------------------------------------------------------------------


def test_an_order_over_rest_reaches_its_owner_as_order_then_position_updates_and_nobody_else(
    stream_server: DaphneServer, market: None, staff: Any
) -> None:
    owner, other = trader(staff), trader(staff)
    set_price(stream_server, staff, "BTCUSD", "64000")
    mine, theirs = Socket(stream_server), Socket(stream_server, f"?token={token(other)}")
    mine.auth(owner)
    theirs.recv_type("authenticated")
    mine.subscribe("orders", "positions")
    theirs.subscribe("orders", "positions")

    order = place(stream_server, owner)

    received = mine.drain(1.5)
    kinds = [m["type"] for m in received]
    assert "order_update" in kinds and "position_update" in kinds, kinds
    assert kinds.index("order_update") < kinds.index("position_update")
    assert received[0]["data"]["id"] == order["id"]
    seqs = [m["seq"] for m in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all("resource_version" in m["data"] for m in received if m["type"] != "trade_update")
    assert theirs.drain(0.5) == []
    mine.close()
    theirs.close()


def test_resume_after_a_dropped_socket_ends_with_exactly_the_events_of_rest(
    stream_server: DaphneServer, market: None, staff: Any
) -> None:
    user = trader(staff)
    set_price(stream_server, staff, "BTCUSD", "64000")
    first = Socket(stream_server, f"?token={token(user)}")
    first.recv_type("authenticated")
    first.subscribe("orders", "positions", "deposits")
    place(stream_server, user, type="limit", price="50000")
    seen = [m["seq"] for m in first.drain(0.8) if "seq" in m]
    assert seen, "the first order's events reached the socket"
    first.ws.socket.close()  # killed: no close frame

    keep_going = threading.Event()

    def orders_meanwhile() -> None:
        for n in range(6):
            place(stream_server, user, type="limit", price=str(50000 - n))
            if keep_going.is_set():
                time.sleep(0.05)

    placing = threading.Thread(target=orders_meanwhile)
    placing.start()
    time.sleep(0.3)
    again = Socket(stream_server)
    again.auth(user)
    # resume first, as README says a reconnecting client should: the replay then comes right
    # after the snapshots, before any live event
    again.send({"op": "resume", "after_seq": seen[-1]})
    again.subscribe("orders", "positions", "deposits")
    keep_going.set()
    placing.join(timeout=20)
    seen += [m["seq"] for m in again.drain(1.5) if "seq" in m and not m.get("snapshot")]

    expected = [seq for seq, _ in events_of(stream_server, user)]
    assert seen == expected
    again.close()


# --- health of a long-lived socket, heartbeat -------------------------------------------


def test_a_socket_answering_pings_stays_open_past_the_old_receive_timeout_with_a_clean_log(
    stream_server: DaphneServer, market: None
) -> None:
    socket = Socket(stream_server, answer_pings=False)
    socket.subscribe("prices:BTCUSD")
    started = time.monotonic()
    pings = 0
    while time.monotonic() - started < 7.0:  # channels_redis' blocking receive timed out after 5 s
        message = socket.recv(timeout=3)
        if message["type"] == "ping":
            pings += 1
            socket.send({"op": "pong"})
    socket.send({"op": "ping"})
    assert socket.recv_type("pong")["type"] == "pong"
    assert pings >= 5
    assert log_problems(stream_server) == []
    socket.close()


def test_a_socket_that_stops_answering_pings_is_closed_on_time(stream_server: DaphneServer) -> None:
    silent = Socket(stream_server, answer_pings=False)
    started = time.monotonic()
    received, code = silent.closed_code(timeout=5)
    elapsed = time.monotonic() - started
    assert code == 4008
    assert received[-1]["code"] == "heartbeat_timeout"
    # The first ping comes 50-100 % of the interval in (spread so sockets opened together
    # do not ping together); the close follows it by the pong timeout.
    assert (
        (HEARTBEAT_MS / 2 + PONG_TIMEOUT_MS) / 1000 - 0.2
        < elapsed
        < (HEARTBEAT_MS + PONG_TIMEOUT_MS) / 1000 + 1.0
    )


# --- bad input --------------------------------------------------------------------------


def test_bad_input_gets_errors_or_a_documented_close_and_other_sockets_carry_on(
    stream_server: DaphneServer, market: None, staff: Any
) -> None:
    user = UserFactory()
    # A known price first: the bystander's update below must be a change (only changes are sent).
    set_price(stream_server, staff, "BTCUSD", "64000")
    bystander = Socket(stream_server)
    bystander.subscribe("prices:BTCUSD")

    socket = Socket(stream_server)
    socket.ws.send("{not json")
    assert socket.recv_type("error")["code"] == "invalid_message"
    socket.send({"op": "dance"})
    assert socket.recv_type("error")["code"] == "unknown_op"
    socket.send({"op": "subscribe", "channels": ["prices:NOPE"]})
    assert socket.recv_type("error")["code"] == "unknown_channel"
    socket.ws.send(json.dumps({"op": "ping", "pad": "x" * 20_000}))
    received, code = socket.closed_code()
    assert code == 4013 and received[-1]["code"] == "message_too_large"

    huge = Socket(stream_server)
    try:
        huge.ws.send("x" * (2 * 1024 * 1024))  # beyond daphne's own 1 MiB limit: the connection is dropped
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        pass  # dropped while the client was still sending: the reset is the drop, seen early
    else:
        assert huge.closed_code()[1] in (None, 1009)

    flood = Socket(stream_server)
    cut_while_sending = False
    for _ in range(60):
        try:
            flood.send({"op": "subscribe", "channels": ["prices:BTCUSD"]})
        except (ConnectionClosed, ConnectionResetError):
            # The server closed the flood before the client finished sending it; what the client
            # still sent then resets the connection, and the close frame may be lost with it.
            cut_while_sending = True
            break
    received, code = flood.closed_code()
    if not (cut_while_sending and code is None):
        assert code == 4029 and "rate_limited" in {m.get("code") for m in received}

    # Long enough to be signed in on a loaded machine, short enough to expire while connected.
    expiring = Socket(stream_server, f"?token={token(user, lifetime=timedelta(seconds=4))}")
    assert expiring.recv_type("authenticated")["expires_at"]
    received, code = expiring.closed_code(timeout=10)
    assert code == 4002 and received[-1]["code"] == "token_expired"

    set_price(stream_server, staff, "BTCUSD", "64321")
    assert bystander.recv_type("price_update")["channel"] == "prices:BTCUSD"
    bystander.send({"op": "ping"})
    assert bystander.recv_type("pong")["type"] == "pong"
    bystander.close()


# --- slow consumers ---------------------------------------------------------------------

SLOW_BUFFER_MAX_BYTES = 65536


@pytest.fixture(scope="module")
def slow_consumer_server(e2e_env: dict[str, str], e2e_log_dir: Path) -> Iterator[DaphneServer]:
    """A daphne that lets at most 64 KiB wait unsent for one socket, and 50 queued messages."""
    env = {
        **e2e_env,
        "STREAM_OUTBOUND_BUFFER_MAX_BYTES": str(SLOW_BUFFER_MAX_BYTES),
        "STREAM_OUTBOUND_QUEUE_MAX": "50",
    }
    server = start_daphne(env, e2e_log_dir)
    yield server
    server.process.stop()


def test_a_client_that_stops_reading_is_closed_as_a_slow_consumer_and_others_carry_on(
    slow_consumer_server: DaphneServer, market: None, staff: Any
) -> None:
    server = slow_consumer_server
    slow_user, other_user = UserFactory(), UserFactory()
    pad = "x" * 8192
    with transaction.atomic():  # about 4 MB of events, far beyond the buffers on the way
        for n in range(500):
            publish(user_id=slow_user.pk, type="order.updated", data={"n": n, "pad": pad})

    healthy = Socket(server, f"?token={token(other_user)}")
    healthy.recv_type("authenticated")
    healthy.subscribe("prices:BTCUSD")

    raw = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    # max_queue=1: the library's own reader stops taking frames off the socket at once.
    slow = connect(
        f"{server.ws_url}?token={token(slow_user)}",
        sock=raw,
        open_timeout=5,
        close_timeout=1,
        max_size=None,
        max_queue=1,
    )
    session_id = json.loads(slow.recv(timeout=5))["session_id"]
    assert json.loads(slow.recv(timeout=5))["type"] == "authenticated"
    slow.send(json.dumps({"op": "resume", "after_seq": 0}))
    slow.send(json.dumps({"op": "subscribe", "channels": ["orders"]}))

    # The client reads nothing now; the server gives up on it once 64 KiB wait unsent.
    closing = f"stream socket {session_id} closed by the server: SLOW_CONSUMER (4009)"
    deadline = time.monotonic() + 20
    while closing not in server.process.output():
        if time.monotonic() > deadline:
            server.process.fail(f"no slow_consumer close of {session_id} within 20 s")
        time.sleep(0.02)

    # Reading again: what was sent before the close, then the reason and the close frame.
    received: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(json.loads(slow.recv(timeout=10)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4009
    assert received[-1]["type"] == "error" and received[-1]["code"] == "slow_consumer"
    events = [m for m in received if m["type"] == "order_update"]
    assert 0 < len(events) < 500  # dropped mid-replay, not buffered to the end
    assert [m["seq"] for m in events] == list(range(1, len(events) + 1))

    set_price(server, staff, "BTCUSD", "64777")
    update = healthy.recv_type("price_update", timeout=10)
    assert update["channel"] == "prices:BTCUSD"
    healthy.send({"op": "ping"})
    assert healthy.recv_type("pong")["type"] == "pong"
    healthy.close()


# --- cancel-on-disconnect ---------------------------------------------------------------


def resting(user: Any) -> list[str]:
    return sorted(
        str(pk)
        for pk in Order.objects.filter(
            user=user, type=Order.Type.LIMIT, status=Order.Status.OPEN
        ).values_list("pk", flat=True)
    )


def test_cancel_on_disconnect_cancels_resting_orders_after_the_timeout_and_only_then(
    stream_server: DaphneServer, celery_worker: CeleryWorker, market: None, staff: Any
) -> None:
    user = trader(staff)
    set_price(stream_server, staff, "BTCUSD", "64000")
    placed = sorted(place(stream_server, user, type="limit", price=p)["id"] for p in ("50000", "51000"))
    watcher = Socket(stream_server, f"?token={token(user)}")
    watcher.recv_type("authenticated")
    watcher.subscribe("orders")

    # Back in time: the orders stay.
    opted = Socket(stream_server, f"?token={token(user)}")
    opted.recv_type("authenticated")
    opted.send({"op": "cancel_on_disconnect", "timeout_ms": 1500})
    assert opted.recv_type("cancel_on_disconnect") == {
        "type": "cancel_on_disconnect",
        "enabled": True,
        "timeout_ms": 1500,
    }
    opted.ws.socket.close()
    time.sleep(0.5)
    back = Socket(stream_server, f"?token={token(user)}")
    back.recv_type("authenticated")
    back.send({"op": "cancel_on_disconnect", "timeout_ms": 1500})
    back.recv_type("cancel_on_disconnect")
    time.sleep(2.5)
    assert resting(user) == placed

    # Gone for good: cancelled after the timeout, not before.
    back.ws.socket.close()
    time.sleep(0.8)
    assert resting(user) == placed
    cancelled = [m for m in watcher.drain(3.0) if m.get("event") == "order.cancelled"]
    assert sorted(m["data"]["id"] for m in cancelled) == placed
    assert all(m["type"] == "order_update" for m in cancelled)
    assert resting(user) == []
    watcher.close()


def test_the_reference_client_killed_mid_stream_resumes_to_exactly_the_events_of_rest(
    stream_server: DaphneServer, market: None, staff: Any
) -> None:
    """Acceptance: events keep coming while the client's connection is cut; the reference
    client reconnects on its own, resumes, and ends with the full sequence, once each."""
    user = trader(staff)
    set_price(stream_server, staff, "BTCUSD", "64000")
    access = token(user, lifetime=timedelta(minutes=5))
    placing_done = threading.Event()
    first_event = threading.Event()

    def orders_meanwhile() -> None:
        first_event.wait(10)
        for n in range(10):
            place(stream_server, user, type="limit", price=str(50000 - n))
            time.sleep(0.05)
        placing_done.set()

    async def consume() -> tuple[list[int], int]:
        seen: list[int] = []
        cut = False
        client = StreamClient(
            stream_server.ws_url,
            token_provider=lambda: access,
            channels=["orders", "positions", "deposits"],
            backoff_initial=0.1,
            backoff_max=0.5,
        )
        async with client:
            iterator = client.__aiter__()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    message = await asyncio.wait_for(iterator.__anext__(), timeout=0.5)
                except TimeoutError:
                    message = None
                if message is not None and "seq" in message and not message.get("snapshot"):
                    seen.append(message["seq"])
                if message is not None and message["type"] == "subscribed":
                    first_event.set()
                if not cut and len(seen) >= 3:
                    assert client._ws is not None
                    client._ws.transport.abort()  # the network goes away: no close frame
                    cut = True
                if placing_done.is_set():
                    expected = await asyncio.to_thread(events_of, stream_server, user)
                    if seen and seen[-1] >= expected[-1][0]:
                        break
            return seen, client.reconnects

    placing = threading.Thread(target=orders_meanwhile)
    placing.start()
    seen, reconnects = asyncio.run(consume())
    placing.join(timeout=30)

    assert reconnects >= 1
    assert seen == [seq for seq, _ in events_of(stream_server, user)]
