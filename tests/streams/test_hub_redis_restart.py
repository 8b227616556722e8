"""The per-process stream hub against a real redis-server that is killed and started again."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings
from redis import asyncio as aioredis

from marqetfi.core.stream_hub import StreamHub, StreamMessage, stream_channel_key
from marqetfi.embedded import EmbeddedRedis

CHANNEL = "prices:BTCUSD"
WAIT_SECONDS = 15.0


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


class RecordingSink:
    def __init__(self) -> None:
        self.bids: list[Any] = []
        self.resyncs: list[str] = []

    def stream_message(self, message: StreamMessage) -> None:
        self.bids.append(message.data["bid"])

    def stream_resync(self, channel: str) -> None:
        self.resyncs.append(channel)


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        await asyncio.sleep(0.02)


async def publish_until_heard(url: str, sink: RecordingSink, bid: str) -> None:
    """Publish one tick, again while nobody on the server follows the channel, until the sink has it."""
    publisher = aioredis.Redis.from_url(url, socket_connect_timeout=2)
    body = json.dumps({"symbol": "BTCUSD", "bid": bid, "ask": bid, "mid": bid})
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while True:
            if await publisher.publish(stream_channel_key(CHANNEL), body):
                break  # a subscriber took it: the hub's connection, the only one on this server
            if time.monotonic() > deadline:
                raise AssertionError(f"no subscriber on {CHANNEL} within {WAIT_SECONDS} s")
            await asyncio.sleep(0.05)
    finally:
        await publisher.aclose()
    await until(lambda: bid in sink.bids, f"delivered {bid}")


async def test_the_hub_reconnects_after_redis_is_killed_resyncs_its_sinks_and_delivers_again(
    redis_server: EmbeddedRedis,
) -> None:
    url = redis_server.url
    with override_settings(REDIS_URL=url):
        hub = StreamHub(asyncio.get_running_loop())
        sink = RecordingSink()
        try:
            await hub.subscribe(CHANNEL, sink)
            await publish_until_heard(url, sink, "100")
            assert sink.resyncs == []

            process = redis_server.process
            assert process is not None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            redis_server.process = None
            redis_server.start()  # a new server on the same port, knowing nothing of the old one
            started = time.monotonic()

            await until(lambda: CHANNEL in sink.resyncs, "told to resync")
            await publish_until_heard(url, sink, "101")
            elapsed = time.monotonic() - started

            assert hub.reconnects == 1
            assert sink.resyncs == [CHANNEL]
            assert sink.bids == ["100", "101"]  # nothing twice, nothing from before the restart lost
            assert elapsed < 10.0
        finally:
            await hub.unsubscribe(CHANNEL, sink)
            await hub.close()
