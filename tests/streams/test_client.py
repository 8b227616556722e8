"""The reference stream client against a small in-test server that speaks the ``/ws`` protocol.

The fake server keeps one user's event log (seq 1, 2, ...) that grows while clients are
connected, answers ``auth`` / ``subscribe`` / ``resume`` / ``pong`` as API.md describes, pings
on connect, and drops connections when told to. Its ``resume`` replays a few events before the
requested seq on purpose (an at-least-once seam), so the client's de-duplication is exercised.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from streams.client import (
    Message,
    StreamAuthError,
    StreamClient,
    StreamConnectionError,
    backoff_delay,
)

TEST_TIMEOUT = 5.0


@dataclass
class Connection:
    ops: list[dict[str, Any]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    pongs: int = 0

    def op(self, name: str) -> list[dict[str, Any]]:
        return [op for op in self.ops if op.get("op") == name]


@dataclass
class Drop:
    after_events: int
    how: str  # "abort" (network gone), "restart" (close 1012), "expire" (close 4001)


class FakeStreamServer:
    def __init__(
        self,
        *,
        tokens: set[str],
        events: int = 30,
        interval: float = 0.002,
        drops: dict[int, Drop] | None = None,
        replay_overlap: int = 3,
    ) -> None:
        self.tokens = tokens
        self.total = events
        self.interval = interval
        self.drops = drops or {}
        self.replay_overlap = replay_overlap
        self.log: list[dict[str, Any]] = []
        self.connections: list[Connection] = []
        self.changed = asyncio.Condition()
        self.producing: asyncio.Task[None] | None = None
        self.url = ""

    async def produce(self) -> None:
        for seq in range(1, self.total + 1):
            kind = "order_update" if seq % 2 else "position_update"
            async with self.changed:
                self.log.append(
                    {"type": kind, "seq": seq, "data": {"id": f"o{seq}", "resource_version": seq}}
                )
                self.changed.notify_all()
            await asyncio.sleep(self.interval)

    async def handler(self, ws: ServerConnection) -> None:
        index = len(self.connections)
        record = Connection()
        self.connections.append(record)
        hello = {
            "type": "hello",
            "session_id": f"s{index}",
            "server_time": "2026-01-01T00:00:00Z",
            "heartbeat_ms": 30000,
            "max_subscriptions": 100,
        }
        await ws.send(json.dumps(hello))
        await ws.send(json.dumps({"type": "ping", "ts": "2026-01-01T00:00:00Z"}))
        start = asyncio.Event()
        cursor = [0]
        streamer = asyncio.create_task(self.stream(ws, index, record, start, cursor))
        channels: list[str] = []
        resume_from: int | None = None
        try:
            async for raw in ws:
                op = json.loads(raw)
                record.ops.append(op)
                name = op.get("op")
                if name == "auth" and op.get("token") not in self.tokens:
                    await ws.send(json.dumps({"type": "error", "code": "invalid_token", "message": "no"}))
                    await ws.close(4001, "invalid token")
                elif name == "subscribe":
                    channels += [c for c in op["channels"] if c not in channels]
                    await ws.send(json.dumps({"type": "subscribed", "channels": channels}))
                    await ws.send(json.dumps({"type": "orders", "snapshot": True, "seq": 0, "data": []}))
                    # Like the server: a resume sent before the subscribe replays from there.
                    cursor[0] = len(self.log) if resume_from is None else resume_from
                    if self.producing is None:
                        self.producing = asyncio.create_task(self.produce())
                    start.set()
                elif name == "resume":
                    resume_from = max(0, op["after_seq"] - self.replay_overlap)
                elif name == "pong":
                    record.pongs += 1
        except ConnectionClosed:
            pass
        finally:
            streamer.cancel()

    async def stream(
        self, ws: ServerConnection, index: int, record: Connection, start: asyncio.Event, cursor: list[int]
    ) -> None:
        await start.wait()
        drop = self.drops.get(index)
        while True:
            while cursor[0] < len(self.log):
                event = self.log[cursor[0]]
                cursor[0] += 1
                price = {
                    "type": "price_update",
                    "channel": "prices:BTCUSD",
                    "data": {"mid": str(event["seq"])},
                }
                await ws.send(json.dumps(price))
                await ws.send(json.dumps(event))
                record.sent.append(event["seq"])
                if drop and len(record.sent) == drop.after_events:
                    if drop.how == "abort":
                        ws.transport.abort()
                    elif drop.how == "expire":
                        await ws.close(4001, "token expired")
                    else:
                        await ws.close(1012, "restart")
                    return
            async with self.changed:
                await self.changed.wait()


def port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


@pytest.fixture
async def server_factory() -> AsyncIterator[Any]:
    servers: list[Any] = []
    fakes: list[FakeStreamServer] = []

    async def make(**kwargs: Any) -> FakeStreamServer:
        fake = FakeStreamServer(**kwargs)
        server = await serve(fake.handler, "127.0.0.1", 0)
        fake.url = f"ws://127.0.0.1:{port_of(server)}/ws"
        servers.append(server)
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        if fake.producing is not None:
            fake.producing.cancel()
    for server in servers:
        server.close()
        await server.wait_closed()


def quick(**kwargs: Any) -> dict[str, Any]:
    """Short backoff and a seeded jitter, so the tests are fast and repeatable."""
    return {"backoff_initial": 0.02, "backoff_max": 0.1, "rng": random.Random(11), **kwargs}


async def test_reconnects_resumes_and_delivers_each_event_once_in_order(server_factory: Any) -> None:
    server = await server_factory(
        tokens={"t"}, events=40, drops={0: Drop(10, "abort"), 1: Drop(12, "restart")}
    )
    calls = []

    def token() -> str:
        calls.append(1)
        return "t"

    seen: list[int] = []
    others: list[Message] = []
    async with asyncio.timeout(TEST_TIMEOUT):
        async with StreamClient(
            server.url,
            token_provider=token,
            channels=["prices:BTCUSD", "orders", "positions"],
            cancel_on_disconnect_ms=5000,
            **quick(),
        ) as client:
            async for message in client:
                if "seq" in message and not message.get("snapshot"):
                    seen.append(message["seq"])
                    assert client.last_seq == message["seq"]
                    if message["seq"] == 40:
                        break
                else:
                    others.append(message)

    assert seen == list(range(1, 41))
    assert len(server.connections) == 3 and client.connections == 3 and client.reconnects == 2
    assert len(calls) == 3  # a token asked for on every connection
    first, second, third = server.connections
    for conn in server.connections:
        assert conn.op("auth") == [{"op": "auth", "token": "t"}]
        assert conn.op("subscribe") == [
            {"op": "subscribe", "channels": ["prices:BTCUSD", "orders", "positions"]}
        ]
        assert conn.op("cancel_on_disconnect") == [{"op": "cancel_on_disconnect", "timeout_ms": 5000}]
        assert conn.pongs == 1  # the server's ping was answered
    assert [op["op"] for op in first.ops][:2] == ["auth", "subscribe"]
    for conn in (second, third):  # resume goes before subscribe: no live event overtakes the replay
        assert [op["op"] for op in conn.ops][:3] == ["auth", "resume", "subscribe"]
    assert first.op("resume") == []  # nothing seen yet: live events only
    assert second.op("resume") == [{"op": "resume", "after_seq": first.sent[-1]}]
    assert third.op("resume") == [{"op": "resume", "after_seq": second.sent[-1]}]
    # The replays overlapped what had been seen; the client passed on none of it twice.
    assert second.sent[0] < first.sent[-1] and third.sent[0] < second.sent[-1]
    assert {m["type"] for m in others} == {"subscribed", "orders", "price_update"}
    assert not any(m["type"] in {"hello", "ping"} for m in others)


async def test_expired_token_is_refreshed_at_once_and_the_stream_continues(server_factory: Any) -> None:
    server = await server_factory(tokens={"old", "new"}, events=20, drops={0: Drop(5, "expire")})
    tokens = iter(["old", "new"])
    seen: list[int] = []
    done = asyncio.Event()

    async def handle(message: Message) -> None:  # callback mode
        if message.get("type") in {"order_update", "position_update"}:
            seen.append(message["seq"])
            if message["seq"] == 20:
                done.set()

    client = StreamClient(
        server.url,
        token_provider=lambda: next(tokens),
        channels=["orders", "positions"],
        on_message=handle,
        backoff_initial=5.0,  # a refused token is retried at once, not after a backoff
        backoff_max=5.0,
    )
    async with asyncio.timeout(TEST_TIMEOUT):
        runner = asyncio.create_task(client.run())
        await done.wait()
        await client.close()
        await runner

    assert seen == list(range(1, 21))
    assert [c.op("auth")[0]["token"] for c in server.connections] == ["old", "new"]
    assert server.connections[1].op("resume") == [{"op": "resume", "after_seq": 5}]
    assert client.last_seq == 20


async def test_a_failing_token_provider_is_raised_to_the_application(server_factory: Any) -> None:
    server = await server_factory(tokens={"t"})

    def token() -> str:
        raise RuntimeError("refresh endpoint down")

    client = StreamClient(server.url, token_provider=token, channels=["orders"], **quick())
    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(StreamAuthError) as raised:
            async for _ in client:
                pass
        with pytest.raises(StreamAuthError):
            await client.wait_closed()
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert server.connections == []


async def test_a_token_refused_twice_in_a_row_ends_the_client(server_factory: Any) -> None:
    server = await server_factory(tokens={"t"})
    client = StreamClient(server.url, token_provider=lambda: "bad", channels=["orders"], **quick())
    async with asyncio.timeout(TEST_TIMEOUT):
        with pytest.raises(StreamAuthError) as raised:
            await client.run()
    assert raised.value.code == "invalid_token"
    assert len(server.connections) == 2  # once more with a fresh token, then no more


async def test_anonymous_client_sends_no_auth_and_no_resume(server_factory: Any) -> None:
    server = await server_factory(tokens=set())
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        StreamClient(server.url, channels=["prices:BTCUSD"], **quick()) as client,
    ):
        async for message in client:
            if message["type"] == "price_update":
                break
        await client.subscribe(["prices:ETHUSD"])
        await client.unsubscribe(["prices:BTCUSD"])
        assert client.channels == ["prices:ETHUSD"]
        await asyncio.sleep(0.05)
    ops = server.connections[0].ops
    assert [op["op"] for op in ops] == ["subscribe", "pong", "subscribe", "unsubscribe"]
    assert ops[2:] == [
        {"op": "subscribe", "channels": ["prices:ETHUSD"]},
        {"op": "unsubscribe", "channels": ["prices:BTCUSD"]},
    ]


async def test_gives_up_after_max_reconnect_attempts() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.close(1013, "try again later")

    async with serve(refuse, "127.0.0.1", 0) as server:
        client = StreamClient(f"ws://127.0.0.1:{port_of(server)}/ws", max_reconnect_attempts=3, **quick())
        async with asyncio.timeout(TEST_TIMEOUT):
            with pytest.raises(StreamConnectionError):
                await client.run()
    assert client.connections == 4  # the first try and three retries


def test_backoff_is_exponential_with_full_jitter_and_bounded() -> None:
    rng = random.Random(3)
    for attempt in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        draws = [backoff_delay(attempt, initial=0.5, maximum=8.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling and min(draws) < 0.2 * ceiling  # spread over the whole range
    with pytest.raises(ValueError):
        backoff_delay(0, initial=0.5, maximum=8.0)
