"""Redis clients for code that runs on an event loop.

Sync code reaches Redis through django-redis (``get_redis_connection``). Code on daphne's
event loop must not hop to a thread for each Redis call: under load the hops queue behind
the GIL and stall every socket of the process. It uses this process's asyncio client, one
per event loop (a client's connections belong to the loop that opened them). A hot path
sending one small command per request uses the loop's ``PipelinedRedis`` instead (one
connection, commands sent together, one timer per round trip).
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.exceptions import ConnectionError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

ASYNC_POOL_MAX_CONNECTIONS = 32
ASYNC_POOL_WAIT_SECONDS = 10
PIPELINE_TIMEOUT_SECONDS = 2.0
_clients: dict[asyncio.AbstractEventLoop, Redis] = {}
_pipelined: dict[asyncio.AbstractEventLoop, PipelinedRedis] = {}


def async_redis() -> Redis:
    """The asyncio Redis client of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        for stale in [known for known in _clients if known.is_closed()]:
            del _clients[stale]
        # A bounded pool that makes callers wait for a free connection: a wave of sockets
        # (thousands of sign-ins at once after a deploy) must not open a connection each.
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=ASYNC_POOL_MAX_CONNECTIONS,
            timeout=ASYNC_POOL_WAIT_SECONDS,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        client = _clients[loop] = Redis(connection_pool=pool)
    return client


def command_pack(*args: bytes) -> bytes:
    """One command in the Redis protocol (RESP), from arguments already encoded."""
    return b"".join([b"*%d\r\n" % len(args), *[b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args]])


class PipelinedRedis:
    """Commands of every coroutine on one event loop over one connection, sent together.

    For hot paths that send one small command per request (the cached-price route): no pool
    to borrow from, no timer per command. A command issued while a round trip is under way
    goes in the next one, so under load many requests share one write and one read, the
    way ``redis.asyncio``'s pipeline would send them. Replies come back in the order sent.

    A round trip that takes longer than ``timeout`` fails every command in it with a
    ``TimeoutError`` and drops the connection (its replies can no longer be matched up); so
    does a broken connection. The next command reconnects. Nothing here retries: callers
    decide, as they would with ``redis.asyncio``.
    """

    def __init__(self, url: str, *, timeout: float = PIPELINE_TIMEOUT_SECONDS) -> None:
        # socket_timeout=None: the timeout is per round trip (below), not per read and write.
        pool = ConnectionPool.from_url(url, socket_timeout=None, socket_connect_timeout=timeout)
        self._connection = pool.make_connection()
        self._timeout = timeout
        self._waiting: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._sending = False
        self._sender: asyncio.Task[None] | None = None

    def execute_packed(self, command: bytes) -> asyncio.Future[Any]:
        """The reply to ``command`` (see ``command_pack``); an error reply is raised as ``ResponseError``."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((command, future))
        if not self._sending:
            self._sending = True
            self._sender = loop.create_task(self._send())
        return future

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._round_trip(batch)
                except asyncio.CancelledError:
                    self._fail([*batch, *self._waiting], ConnectionError("Redis client closed"))
                    self._waiting = []
                    raise
                except Exception as error:  # noqa: BLE001 - no caller may wait forever: each gets a RedisError
                    await self._connection.disconnect(nowait=True)
                    if isinstance(error, RedisError):
                        failure: RedisError = error
                    elif isinstance(error, TimeoutError):
                        failure = RedisTimeoutError(f"no reply from Redis in {self._timeout} s")
                    else:
                        failure = ConnectionError(f"Redis connection failed: {error!r}")
                    self._fail(batch, failure)
        finally:
            self._sending = False

    async def _round_trip(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        connection = self._connection
        async with asyncio.timeout(self._timeout):
            await connection.send_packed_command(
                b"".join([command for command, _ in batch]), check_health=False
            )
            for _, future in batch:
                try:
                    reply = await connection.read_response()
                except ResponseError as error:  # read whole: the connection stays in step
                    if not future.done():
                        future.set_exception(error)
                    continue
                if not future.done():  # a caller that gave up (client gone) is skipped
                    future.set_result(reply)

    @staticmethod
    def _fail(batch: list[tuple[bytes, asyncio.Future[Any]]], error: Exception) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error)


def pipelined_redis() -> PipelinedRedis:
    """The pipelined Redis client of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    client = _pipelined.get(loop)
    if client is None:
        for stale in [known for known in _pipelined if known.is_closed()]:
            del _pipelined[stale]
        client = _pipelined[loop] = PipelinedRedis(settings.REDIS_URL)
    return client
