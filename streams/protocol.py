"""The ``/ws`` wire protocol: close codes, error codes, channel names, outbox event mapping.

Pure functions and constants; the consumer does the I/O. README ("WebSocket") documents it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from django.utils import timezone

from marqetfi.core.formats import timestamp_text


class CloseCode(IntEnum):
    """Why the server closed a socket. Applications may only send 1000 and 3000-4999 (RFC 6455),
    so a message too big is 4013 here; 1009 comes from the server's own frame limit."""

    AUTH_FAILED = 4001  # invalid, malformed or revoked token, unknown user
    TOKEN_EXPIRED = 4002  # expired when presented, or expired while connected: refresh and reconnect
    FORBIDDEN = 4003  # the user is inactive
    HEARTBEAT_TIMEOUT = 4008  # no pong within STREAM_PONG_TIMEOUT_MS of a ping
    SLOW_CONSUMER = 4009  # the client did not read fast enough; its backlog hit the bound
    TOO_MANY_SOCKETS = 4010  # the user already has STREAM_MAX_SOCKETS_PER_USER sockets open
    MESSAGE_TOO_BIG = 4013  # a message above STREAM_MAX_MESSAGE_BYTES (daphne closes with 1009 above 1 MiB)
    RATE_LIMITED = 4029  # kept flooding after a rate_limited error


USER_CHANNELS: Final = ("orders", "positions", "deposits")
PRICE_PREFIX: Final = "prices:"

# What a client may send (``{"op": ...}``); the consumer answers any other op with ``unknown_op``.
CLIENT_OPS: Final = ("auth", "subscribe", "unsubscribe", "resume", "pong", "ping", "cancel_on_disconnect")
# The server's messages other than the user's events (EVENT_MESSAGE_TYPES, below).
CONTROL_MESSAGE_TYPES: Final = (
    "hello",
    "authenticated",
    "subscribed",
    "snapshot",
    "price_update",
    "resumed",
    "ping",
    "pong",
    "cancel_on_disconnect",
    "error",
)
# The ``error`` code sent just before each close code.
CLOSE_ERROR_CODES: Final = {
    CloseCode.AUTH_FAILED: "auth_failed",
    CloseCode.TOKEN_EXPIRED: "token_expired",
    CloseCode.FORBIDDEN: "forbidden",
    CloseCode.HEARTBEAT_TIMEOUT: "heartbeat_timeout",
    CloseCode.SLOW_CONSUMER: "slow_consumer",
    CloseCode.TOO_MANY_SOCKETS: "too_many_sockets",
    CloseCode.MESSAGE_TOO_BIG: "message_too_large",
    CloseCode.RATE_LIMITED: "rate_limited",
}
RESUME_BATCH: Final = 500
CANCEL_ON_DISCONNECT_MIN_MS: Final = 1_000
CANCEL_ON_DISCONNECT_MAX_MS: Final = 600_000


def encode(message: dict[str, Any]) -> str:
    """Compact JSON: mobile bandwidth."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def now_text() -> str:
    return timestamp_text(timezone.now())


def error(code: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if details:
        body["details"] = details
    return body


def price_symbol(channel: str) -> str | None:
    """``prices:BTCUSD`` -> ``BTCUSD`` (upper-cased); None for any other channel."""
    if not channel.startswith(PRICE_PREFIX):
        return None
    return channel[len(PRICE_PREFIX) :].strip().upper()


def channel_normalize(channel: str) -> str:
    symbol = price_symbol(channel)
    return channel.strip().lower() if symbol is None else PRICE_PREFIX + symbol


def is_user_channel(channel: str) -> bool:
    return channel in USER_CHANNELS


@dataclass(frozen=True)
class EventRoute:
    """How an outbox event type goes out: its message type and the channels that receive it
    (empty: every authenticated socket that follows any user channel)."""

    message_type: str
    channels: tuple[str, ...]


_ROUTES: Final = {
    "order": EventRoute("order_update", ("orders",)),
    "trade": EventRoute("trade_update", ("orders", "positions")),
    "position": EventRoute("position_update", ("positions",)),
    "deposit": EventRoute("deposit_update", ("deposits",)),
    "swap": EventRoute("deposit_update", ("deposits",)),
    "risk": EventRoute("risk", ()),
    "account": EventRoute("account", ()),
}


# Message types of the user's events, in route order, each once.
EVENT_MESSAGE_TYPES: Final = tuple(dict.fromkeys(route.message_type for route in _ROUTES.values()))
MESSAGE_TYPES: Final = CONTROL_MESSAGE_TYPES + EVENT_MESSAGE_TYPES


def event_routes() -> dict[str, EventRoute]:
    """Event type prefix (``order``) -> its route."""
    return dict(_ROUTES)


def event_route(event_type: str) -> EventRoute | None:
    """The route of ``order.filled`` and the like; None for events sockets never see (``webhook.test``)."""
    return _ROUTES.get(event_type.split(".", 1)[0])


def event_message(route: EventRoute, event: dict[str, Any]) -> dict[str, Any]:
    """The socket message of one outbox event (``event_payload`` shape in, stream envelope out)."""
    return {
        "type": route.message_type,
        "seq": event["seq"],
        "event": event["type"],
        "id": event["id"],
        "created_at": event["created_at"],
        "data": event["data"],
    }


def event_wanted(route: EventRoute, subscribed: set[str]) -> bool:
    if not route.channels:
        return any(channel in subscribed for channel in USER_CHANNELS)
    return any(channel in subscribed for channel in route.channels)


def price_message(channel: str, tick: dict[str, Any], *, snapshot: bool = False) -> dict[str, Any]:
    data = {"bid": tick.get("bid"), "ask": tick.get("ask"), "mid": tick.get("mid"), "ts": tick.get("ts")}
    message: dict[str, Any] = {"type": "price_update", "channel": channel, "data": data}
    if snapshot:
        message["snapshot"] = True
    return message
