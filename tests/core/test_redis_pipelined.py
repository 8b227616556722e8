"""The pipelined Redis client of the hot paths: every caller gets its own reply, and none waits forever."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from marqetfi.core.redis import PipelinedRedis, command_pack


async def test_concurrent_callers_each_get_their_own_reply(redis_conn: Any) -> None:
    for n in range(50):
        redis_conn.set(f"test:pipelined:{n}", f"value-{n}")
    redis_conn.set("test:pipelined:text", "not a number")
    client = PipelinedRedis(settings.REDIS_URL)

    async def get(n: int) -> Any:
        return await client.execute_packed(command_pack(b"GET", b"test:pipelined:%d" % n))

    async def bad_incr() -> Any:
        return await client.execute_packed(command_pack(b"INCR", b"test:pipelined:text"))

    replies = await asyncio.gather(
        *[get(n) for n in range(25)], bad_incr(), *[get(n) for n in range(25, 50)], return_exceptions=True
    )

    assert isinstance(replies[25], ResponseError)  # the error reply is that caller's alone
    assert [*replies[:25], *replies[26:]] == [b"value-%d" % n for n in range(50)]
    assert await get(7) == b"value-7"  # and the connection is still in step


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a Redis that hangs)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


async def test_a_redis_that_never_answers_fails_the_call_within_the_timeout(silent_server: str) -> None:
    client = PipelinedRedis(silent_server, timeout=0.3)
    started = time.monotonic()

    results = await asyncio.gather(
        *[client.execute_packed(command_pack(b"GET", b"anything")) for _ in range(3)], return_exceptions=True
    )

    assert all(isinstance(result, RedisTimeoutError) for result in results)
    assert time.monotonic() - started < 2
