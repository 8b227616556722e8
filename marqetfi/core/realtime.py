"""The one place that talks to the Channels layer."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from marqetfi.core.events import event_payload
from marqetfi.core.models import Event


def user_group_name(user_id: Any) -> str:
    return f"user.{user_id}"


def group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("No channel layer is configured (CHANNEL_LAYERS).")
    async_to_sync(layer.group_send)(group, message)


def event_dispatch_to_user_group(event: Event) -> None:
    """Outbox dispatcher: the user's open sockets receive the event (``stream.event``)."""
    group_send(user_group_name(event.user_id), {"type": "stream.event", "event": event_payload(event)})
