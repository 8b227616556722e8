"""The one place that sends to sockets: stream publishes and the Channels layer.

``stream_publish`` is the fan-out of the ``/ws`` stream: one Redis ``PUBLISH`` per message
on the stream channel's key; each web process's ``stream_hub`` holds one subscription per
channel its sockets follow and hands the message to them in memory.

``group_send`` reaches Channels groups (nothing of the stream uses it). Sync code
(services, the feed, Celery tasks) sends to the layer through one event loop per process that
lives in a daemon thread. ``async_to_sync`` would start a fresh loop for every message, and
channels_redis keeps its Redis connections per loop, so each message paid for a new
connection (about 3.5 ms); on the long-lived loop the connections are reused. A process
that forks (Celery's prefork pool) starts its own loop on first use.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Coroutine
from typing import Any, Final

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django_redis import get_redis_connection

from marqetfi.core.events import event_payload
from marqetfi.core.models import Event
from marqetfi.core.stream_hub import stream_channel_key

SEND_TIMEOUT_SECONDS: Final = 5.0


class _LayerLoop:
    """A private event loop in a daemon thread, started on first use (and again after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = SEND_TIMEOUT_SECONDS) -> Any:
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("realtime sends cannot be made from the layer's own loop")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="realtime-loop", daemon=True)
                self._thread.start()
                ready.wait(5)
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_layer_loop = _LayerLoop()


def user_stream_channel(user_id: Any) -> str:
    """The stream channel of one user's outbox events."""
    return f"user:{user_id}"


def price_stream_channel(symbol: str) -> str:
    """The stream channel of one symbol's ticks."""
    return f"prices:{symbol}"


def stream_publish(channel: str, message: dict[str, Any]) -> int:
    """Publish ``message`` on a stream channel (one Redis ``PUBLISH``); returns how many web
    processes follow the channel. Compact JSON: it is decoded once per process."""
    body = json.dumps(message, separators=(",", ":"), cls=DjangoJSONEncoder)
    return int(get_redis_connection("default").publish(stream_channel_key(channel), body))


def event_dispatch_to_user_stream(event: Event) -> None:
    """Outbox dispatcher: the event goes to the user's stream channel, read by their sockets."""
    stream_publish(user_stream_channel(event.user_id), event_payload(event))


def group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured (CHANNEL_LAYERS).")
    _layer_loop.call(layer.group_send(group, message))
