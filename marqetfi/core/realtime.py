"""The one place that sends to sockets: stream publishes.

``stream_publish`` is the fan-out of the ``/ws`` stream: one Redis ``PUBLISH`` per message
on the stream channel's key; each web process's ``stream_hub`` holds one subscription per
channel its sockets follow and hands the message to them in memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django_redis import get_redis_connection

from marqetfi.core.events import event_payload
from marqetfi.core.models import Event
from marqetfi.core.stream_hub import stream_channel_key


def user_stream_channel(user_id: Any) -> str:
    """The stream channel of one user's outbox events."""
    return f"user:{user_id}"


def price_stream_channel(symbol: str) -> str:
    """The stream channel of one symbol's ticks."""
    return f"prices:{symbol}"


def stream_publish(channel: str, message: dict[str, Any]) -> int:
    """Publish ``message`` on a stream channel (one Redis ``PUBLISH``); returns how many web
    processes follow the channel. Compact JSON: it is decoded once per process."""
    return int(get_redis_connection("default").publish(stream_channel_key(channel), _stream_body(message)))


def _stream_body(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), cls=DjangoJSONEncoder)


def events_dispatch_to_user_stream(events: Sequence[Event]) -> None:
    """Outbox dispatcher: each event goes to its user's stream channel, read by their sockets;
    the batch's publishes go to Redis in one pipeline (one round trip), in order."""
    pipeline = get_redis_connection("default").pipeline(transaction=False)
    for event in events:
        pipeline.publish(
            stream_channel_key(user_stream_channel(event.user_id)), _stream_body(event_payload(event))
        )
    pipeline.execute()
