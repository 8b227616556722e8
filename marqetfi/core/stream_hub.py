"""One Redis pub/sub connection per web process, fanning stream messages out in memory.

A channels-redis group send costs one Redis push per subscribed socket. Here a publisher
makes one ``PUBLISH`` per message (``realtime.stream_publish``) and every web process holds
a single subscription per stream channel its sockets follow: the hub counts the local
subscribers of each channel, sends ``SUBSCRIBE`` for the first and ``UNSUBSCRIBE`` after the
last, decodes each message once and hands it to every local sink, synchronously, on the
event loop. Sinks must therefore be quick and never block (queue and return).

The hub starts lazily on the loop of the first subscriber (daphne's). If Redis goes away it
reconnects with exponential backoff and jitter, subscribes again to every channel in use and
tells each sink that messages may have been missed (``stream_resync``), so sinks with a
durable source (the outbox) can catch up from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from django.conf import settings
from redis import asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CONTROL_CHANNEL: Final = "_hub"  # always subscribed, so the connection is never idle-unsubscribed
SUBSCRIBE_CONFIRM_TIMEOUT_SECONDS: Final = 5.0
RECONNECT_BACKOFF_MIN_SECONDS: Final = 0.1
RECONNECT_BACKOFF_MAX_SECONDS: Final = 5.0
READ_POLL_SECONDS: Final = 1.0  # each idle poll lets redis-py run its connection health check


def stream_channel_key(channel: str) -> str:
    """The Redis pub/sub key of a stream channel: ``prices:BTCUSD`` -> ``marqetfi:stream:prices:BTCUSD``."""
    return f"{settings.STREAM_CHANNEL_PREFIX}:{channel}"


@dataclass
class StreamMessage:
    """One published message as every local sink sees it: decoded once, never to be mutated.

    ``memo`` lets sinks share work derived from the message (such as its encoded wire form)."""

    channel: str
    data: dict[str, Any]
    memo: dict[str, Any] = field(default_factory=dict)


class StreamSink(Protocol):
    def stream_message(self, message: StreamMessage) -> None:
        """Take one message; called on the event loop, must not block or raise."""

    def stream_resync(self, channel: str) -> None:
        """Messages of ``channel`` may have been lost (Redis reconnect); catch up if you can."""


class StreamHub:
    """Ref-counted subscriptions of this process's sinks, one pub/sub connection underneath."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._sinks: dict[str, set[StreamSink]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._lock = asyncio.Lock()
        self._pubsub: Any = None
        self._client: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0

    # --- subscribers --------------------------------------------------------------------

    async def subscribe(self, channel: str, sink: StreamSink) -> None:
        """Deliver ``channel``'s messages to ``sink`` from now on (returns once Redis confirmed)."""
        self._ensure_started()
        sinks = self._sinks.setdefault(channel, set())
        first = not sinks
        sinks.add(sink)
        if first:
            self._confirmed[channel] = asyncio.Event()
            async with self._lock:
                if self._pubsub is not None and self._connected.is_set():
                    with contextlib.suppress(RedisError, OSError):
                        await self._pubsub.subscribe(stream_channel_key(channel))
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_CONFIRM_TIMEOUT_SECONDS)

    async def unsubscribe(self, channel: str, sink: StreamSink) -> None:
        sinks = self._sinks.get(channel)
        if not sinks or sink not in sinks:
            return
        sinks.discard(sink)
        if sinks:
            return
        del self._sinks[channel]
        self._confirmed.pop(channel, None)
        async with self._lock:
            if self._pubsub is not None and self._connected.is_set() and channel not in self._sinks:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(stream_channel_key(channel))

    async def unsubscribe_all(self, sink: StreamSink, channels: Iterable[str]) -> None:
        for channel in list(channels):
            await self.unsubscribe(channel, sink)

    def local_subscribers(self, channel: str) -> int:
        return len(self._sinks.get(channel, ()))

    @property
    def channels(self) -> list[str]:
        return sorted(self._sinks)

    # --- the connection -----------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = self.loop.create_task(self._run(), name="stream-hub")

    async def _connect(self) -> None:
        self._client = aioredis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=None,  # pub/sub reads wait for messages; liveness comes from health checks
            socket_connect_timeout=2,
            socket_keepalive=True,
            health_check_interval=15,
        )
        self._pubsub = self._client.pubsub()
        prefix = f"{settings.STREAM_CHANNEL_PREFIX}:"
        keys = [stream_channel_key(CONTROL_CHANNEL), *(prefix + channel for channel in self._sinks)]
        await self._pubsub.subscribe(*keys)
        self._connected.set()

    async def _disconnect(self) -> None:
        self._connected.clear()
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
        with contextlib.suppress(Exception):
            if client is not None:
                await client.aclose()

    async def _run(self) -> None:
        backoff = RECONNECT_BACKOFF_MIN_SECONDS
        lost = False
        prefix_length = len(settings.STREAM_CHANNEL_PREFIX) + 1
        while True:
            try:
                async with self._lock:
                    await self._connect()
                if lost:
                    self.reconnects += 1
                    logger.info("stream hub reconnected to Redis (%s channels)", len(self._sinks))
                    self._resync_all()
                backoff = RECONNECT_BACKOFF_MIN_SECONDS
                while True:
                    raw = await self._pubsub.get_message(timeout=READ_POLL_SECONDS)
                    if raw is not None:
                        self._handle(raw, prefix_length)
            except asyncio.CancelledError:
                await self._disconnect()
                raise
            except (RedisError, OSError) as exc:
                logger.warning("stream hub lost Redis (%r); reconnecting in %.1f s", exc, backoff)
            except Exception:  # a bug must not end fan-out for the whole process
                logger.exception("stream hub failed; reconnecting in %.1f s", backoff)
            lost = True
            await self._disconnect()
            for confirmed in self._confirmed.values():
                confirmed.clear()
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_SECONDS)

    def _handle(self, raw: dict[str, Any], prefix_length: int) -> None:
        kind = raw.get("type")
        key = raw.get("channel")
        if not isinstance(key, bytes | str):
            return
        channel = (key.decode() if isinstance(key, bytes) else key)[prefix_length:]
        if kind == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
            return
        if kind != "message":
            return
        sinks = self._sinks.get(channel)
        if not sinks:
            return
        try:
            data = json.loads(raw["data"])
        except (TypeError, ValueError):
            logger.warning("stream message on %s is not JSON; dropped", channel)
            return
        if not isinstance(data, dict):
            return
        message = StreamMessage(channel, data)
        for sink in list(sinks):
            try:
                sink.stream_message(message)
            except Exception:  # one sink's bug must not starve the others
                logger.exception("stream sink failed on %s", channel)

    def _resync_all(self) -> None:
        for channel, sinks in list(self._sinks.items()):
            for sink in list(sinks):
                try:
                    sink.stream_resync(channel)
                except Exception:
                    logger.exception("stream sink failed to resync %s", channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None


_hub: StreamHub | None = None


def stream_hub() -> StreamHub:
    """This process's hub, bound to the running event loop (a new loop gets a new hub)."""
    global _hub  # noqa: PLW0603 - one hub per process and loop, made on first use
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop or loop.is_closed():
        _hub = StreamHub(loop)
    return _hub
