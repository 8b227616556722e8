"""The out-of-band half of the API docs: webhook events in the OpenAPI schema (3.1 ``webhooks``)
and the ``/ws`` protocol as an AsyncAPI 3.0 document.

Both are built from the project's own lists, so they cannot drift from what is sent: the event
types from ``webhooks.event_types.EVENT_TYPES``, the channels, ops, message types, event routes
and close codes from ``streams.protocol``. The event payloads reuse the REST serializers
(``Order``, ``Fill``, ``Position``, ``Deposit``), so the AsyncAPI document copies their JSON
Schemas out of the generated OpenAPI schema rather than restating them.

This lives in the stream app because it is the one layer that may import every domain app.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any, Final

from django.conf import settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.plumbing import process_webhooks
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema, inline_serializer
from rest_framework import serializers

from deposits.serializers import DepositSerializer
from marqetfi.core.api import decimal_output
from streams import protocol
from trading.schemas import FillSerializer, OrderSerializer, PositionSerializer
from webhooks.event_types import EVENT_TYPES

ASYNCAPI_VERSION: Final = "3.0.0"
WEBHOOK_TAG: Final = "webhooks"


class MarginCallDataSerializer(PositionSerializer):
    """``risk.margin_call``: the position (``mark_price`` the one that called it), with its levels."""

    margin_call_level = decimal_output(help_text="Share of collateral left at which the margin call fires.")
    liquidation_level = decimal_output(help_text="Share of collateral left at which it is liquidated.")


WalletLinkedDataSerializer = inline_serializer(
    "WalletLinkedData",
    {
        "wallet_id": serializers.UUIDField(),
        "address": serializers.CharField(),
        "kind": serializers.CharField(help_text="mpc or external"),
        "provider": serializers.CharField(required=False, help_text="MPC wallets: privy, dynamic..."),
    },
)
AuthMethodLinkedDataSerializer = inline_serializer(
    "AuthMethodLinkedData",
    {
        "identity_id": serializers.UUIDField(),
        "method": serializers.CharField(help_text="email, siwe, google..."),
    },
)
WebhookDisabledDataSerializer = inline_serializer(
    "WebhookDisabledData",
    {
        "endpoint_id": serializers.UUIDField(),
        "url": serializers.URLField(),
        "reason": serializers.CharField(help_text="Why it was disabled, e.g. failing."),
    },
)
WebhookTestDataSerializer = inline_serializer(
    "WebhookTestData", {"endpoint_id": serializers.UUIDField(), "message": serializers.CharField()}
)

# The ``data`` of each event type: exact types first, else by the part before the dot.
_DATA_BY_TYPE: Final[dict[str, Any]] = {
    "trade.executed": FillSerializer,
    "risk.margin_call": MarginCallDataSerializer,
    # The position as closed; liquidation_price is the trigger price that liquidated it.
    "risk.liquidation": PositionSerializer,
    "account.wallet_linked": WalletLinkedDataSerializer,
    "account.auth_method_linked": AuthMethodLinkedDataSerializer,
    "account.webhook_disabled": WebhookDisabledDataSerializer,
    "webhook.test": WebhookTestDataSerializer,
}
_DATA_BY_PREFIX: Final[dict[str, Any]] = {
    "order": OrderSerializer,
    "position": PositionSerializer,
    "deposit": DepositSerializer,
    "swap": DepositSerializer,
}


def event_data_serializer(event_type: str) -> Any:
    """The serializer documenting ``data`` of an event; LookupError for a type nobody described
    (the docs tests generate every one, so a new event type without a shape fails them)."""
    found = _DATA_BY_TYPE.get(event_type) or _DATA_BY_PREFIX.get(event_type.split(".", 1)[0])
    if found is None:
        raise LookupError(f"no payload schema documents the event type {event_type!r}")
    return found


def event_component_name(event_type: str) -> str:
    """``order.filled`` -> ``OrderFilledEvent``, the envelope's component name."""
    return "".join(part.capitalize() for part in re.split(r"[._]", event_type)) + "Event"


def _envelope(event_type: str) -> Any:
    data = event_data_serializer(event_type)
    return inline_serializer(
        event_component_name(event_type),
        {
            "id": serializers.CharField(help_text="evt_...: the event id, also sent as webhook-id."),
            "type": serializers.CharField(help_text=f"Always {event_type}."),
            "seq": serializers.IntegerField(
                help_text="The user's gapless event number, as on the WebSocket and in GET /events."
            ),
            "created_at": serializers.DateTimeField(),
            "data": data() if isinstance(data, type) else data,
        },
    )


WEBHOOK_HEADERS: Final = (
    (
        "webhook-id",
        {"type": "string", "example": "evt_0b9f3c2e6d7a4f8e9a1b2c3d4e5f6a7b"},
        "The event id: the same on every retry of the event, so receivers deduplicate on it.",
    ),
    (
        "webhook-timestamp",
        {"type": "string", "pattern": "^[0-9]+$", "example": "1767225600"},
        "Unix seconds when this attempt was signed; reject ones too far from now (replays).",
    ),
    (
        "webhook-signature",
        {"type": "string", "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="},
        "Standard Webhooks signature: space-separated v1,<base64 HMAC-SHA256> over "
        "`{webhook-id}.{webhook-timestamp}.{body}` keyed with the endpoint secret (whsec_..., "
        "base64 after the prefix); one per secret in use, newest first (two during a rotation). "
        "Any official standardwebhooks verifier accepts it.",
    ),
    (
        "X-Webhook-Signature",
        {"type": "string"},
        "The same value as webhook-signature, for receivers that expect this name.",
    ),
)


def openapi_webhooks() -> list[OpenApiWebhook]:
    """One OpenAPI webhook per event type the platform sends."""
    return [
        OpenApiWebhook(
            name=event_type,
            decorator=extend_schema(
                tags=[WEBHOOK_TAG],
                summary=f"{event_type} event",
                description=(
                    f"POSTed to every enabled endpoint subscribed to `{event_type}` (or to every type). "
                    "Answer 2xx within the timeout; anything else is retried with exponential backoff "
                    "and jitter, and every attempt is in the delivery log."
                ),
                request=_envelope(event_type),
                responses={200: OpenApiResponse(description="Any 2xx acknowledges the delivery.")},
            ),
        )
        for event_type in EVENT_TYPES
    ]


def schema_add_webhooks(*, result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: the webhook events, their payload components and headers.

    Done as a hook rather than SPECTACULAR_SETTINGS["WEBHOOKS"] because the generator builds
    the components before the settings' webhooks are processed; here they are built again
    after, so the payload components are in the schema."""
    webhooks = process_webhooks(openapi_webhooks(), generator.registry)
    for event_type, path_item in webhooks.items():
        operation = path_item["post"]
        operation["operationId"] = "webhook_" + re.sub(r"\W", "_", event_type)
        operation["parameters"] = [
            {"in": "header", "name": name, "required": True, "schema": schema, "description": text}
            for name, schema, text in WEBHOOK_HEADERS
        ]
    result["webhooks"] = webhooks
    components = generator.registry.build(spectacular_settings.APPEND_COMPONENTS)
    for event_type in EVENT_TYPES:
        properties = components["schemas"][event_component_name(event_type)]["properties"]
        properties["type"] = {**properties["type"], "const": event_type}
    result["components"] = components
    return result


# --- AsyncAPI: the /ws protocol ----------------------------------------------------------------

_STRING: Final = {"type": "string"}
_TIME: Final = {"type": "string", "format": "date-time"}
_INT: Final = {"type": "integer"}
_CHANNEL_NAMES: Final = {"type": "array", "items": {"type": "string"}}


def _message_schema(type_: str, properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"type": {"type": "string", "const": type_}, **properties},
        "required": ["type", *required],
    }


def _op_schema(op: str, properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"op": {"type": "string", "const": op}, **properties},
        "required": ["op", *required],
    }


# What a client sends, per op (protocol.CLIENT_OPS).
_OPS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "auth": (
        "Sign in with an access JWT (or pass ?token= on the URL). Answered with authenticated, or a close.",
        _op_schema("auth", {"token": _STRING}, ("token",)),
    ),
    "subscribe": (
        "Follow channels; answered with subscribed (every channel now followed), then a snapshot "
        "per new channel.",
        _op_schema("subscribe", {"channels": _CHANNEL_NAMES}, ("channels",)),
    ),
    "unsubscribe": (
        "Stop following channels; answered with subscribed.",
        _op_schema("unsubscribe", {"channels": _CHANNEL_NAMES}, ("channels",)),
    ),
    "resume": (
        "Replay every event after after_seq from the outbox, then resumed, then live events. "
        "Send it before subscribe when reconnecting.",
        _op_schema("resume", {"after_seq": {"type": "integer", "minimum": 0}}, ("after_seq",)),
    ),
    "pong": ("Answers the server's ping.", _op_schema("pong", {})),
    "ping": ("Asks for a pong.", _op_schema("ping", {})),
    "cancel_on_disconnect": (
        "Opt in (timeout_ms 1000..600000) or out (0): cancel the resting limit orders once every "
        "opted-in socket has been gone that long.",
        _op_schema("cancel_on_disconnect", {"timeout_ms": _INT}, ("timeout_ms",)),
    ),
}

_LIMITS: Final = {
    "type": "object",
    "properties": dict.fromkeys(
        (
            "pong_timeout_ms",
            "max_subscriptions",
            "max_messages_per_second",
            "max_message_bytes",
            "max_sockets_per_user",
            "price_updates_per_second",
            "outbound_queue",
        ),
        _INT,
    ),
}
_QUOTE: Final = {
    "type": ["object", "null"],
    "properties": {"bid": _STRING, "ask": _STRING, "mid": _STRING, "ts": _TIME},
    "description": "Decimal strings; null when no venue has a price.",
}

# What the server sends besides the user's events (protocol.CONTROL_MESSAGE_TYPES).
_CONTROL: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "hello": (
        "The first message of every socket.",
        _message_schema(
            "hello",
            {
                "session_id": _STRING,
                "server_time": _TIME,
                "heartbeat_ms": _INT,
                "max_subscriptions": _INT,
                "limits": _LIMITS,
            },
            ("session_id", "server_time", "heartbeat_ms", "max_subscriptions"),
        ),
    ),
    "authenticated": (
        "The socket is signed in (auth op or ?token=).",
        _message_schema(
            "authenticated", {"user_id": _STRING, "expires_at": {**_TIME, "type": ["string", "null"]}}
        ),
    ),
    "subscribed": (
        "Every channel the socket now follows.",
        _message_schema("subscribed", {"channels": _CHANNEL_NAMES}, ("channels",)),
    ),
    "snapshot": (
        "The state of a user channel when subscribed: open orders, open positions (with mark_price "
        "and unrealized_pnl) or pending deposits. seq is the user's last event number then.",
        _message_schema(
            "snapshot",
            {
                "channel": _STRING,
                "snapshot": {"type": "boolean", "const": True},
                "seq": _INT,
                "data": {"type": "array", "items": {"type": "object"}},
            },
            ("channel", "snapshot", "seq", "data"),
        ),
    ),
    "price_update": (
        "A price of a followed symbol, conflated per socket and symbol; the first one after "
        "subscribe carries snapshot: true.",
        _message_schema(
            "price_update",
            {"channel": _STRING, "data": _QUOTE, "snapshot": {"type": "boolean"}},
            ("channel", "data"),
        ),
    ),
    "resumed": (
        "The replay of a resume is done; live events follow.",
        _message_schema(
            "resumed", {"after_seq": _INT, "replayed": _INT, "last_seq": {"type": ["integer", "null"]}}
        ),
    ),
    "ping": ('Heartbeat; answer with {"op": "pong"}.', _message_schema("ping", {"ts": _TIME})),
    "pong": ("Answers the client's ping op.", _message_schema("pong", {"ts": _TIME})),
    "cancel_on_disconnect": (
        "Cancel-on-disconnect is now on or off for this socket.",
        _message_schema("cancel_on_disconnect", {"enabled": {"type": "boolean"}, "timeout_ms": _INT}),
    ),
    "error": (
        "Something the client sent was refused, or (before a close) why the socket closes. "
        "code is stable snake_case.",
        _message_schema(
            "error", {"code": _STRING, "message": _STRING, "details": {"type": "object"}}, ("code",)
        ),
    ),
}


def _schema_refs(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in schema.values():
            found |= _schema_refs(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _schema_refs(value)
    return found


@lru_cache(maxsize=1)
def _openapi_components() -> dict[str, Any]:
    """The OpenAPI schema's component schemas (built once per process)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return dict(schema.get("components", {}).get("schemas", {}))


def _component_closure(names: set[str], components: dict[str, Any]) -> dict[str, Any]:
    """The named component schemas and every one they refer to."""
    wanted, todo = {}, sorted(names)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = copy.deepcopy(components[name])
        todo.extend(sorted(_schema_refs(wanted[name]) - set(wanted)))
    return dict(sorted(wanted.items()))


def _routes_by_message_type() -> dict[str, tuple[protocol.EventRoute, list[str]]]:
    """Message type -> (its route, the event types sent as it), for the events sockets see."""
    routes: dict[str, tuple[protocol.EventRoute, list[str]]] = {}
    for event_type in EVENT_TYPES:
        route = protocol.event_route(event_type)
        if route is not None:
            routes.setdefault(route.message_type, (route, []))[1].append(event_type)
    return routes


def _event_message(message_type: str, event_types: list[str]) -> dict[str, Any]:
    data_components = list(dict.fromkeys(_data_component(t) for t in event_types))
    data: dict[str, Any] = (
        {"$ref": f"#/components/schemas/{data_components[0]}"}
        if len(data_components) == 1
        else {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in data_components]}
    )
    return {
        "name": message_type,
        "title": message_type,
        "summary": "One of the user's events: " + ", ".join(event_types) + ".",
        "description": "The same event as GET /events and the webhook of the same type. seq is "
        "gapless per user: after a reconnect, resume from the last seq seen. Objects carry "
        "resource_version: apply an update only if it is newer.",
        "payload": _message_schema(
            message_type,
            {
                "seq": _INT,
                "event": {"type": "string", "enum": event_types},
                "id": {"type": "string", "description": "evt_..."},
                "created_at": _TIME,
                "data": data,
            },
            ("seq", "event", "id", "created_at", "data"),
        ),
    }


def _data_component(event_type: str) -> str:
    """The component name drf-spectacular gives the data serializer of an event type."""
    envelope = _openapi_components()[event_component_name(event_type)]
    ref = envelope["properties"]["data"]["$ref"]
    return str(ref.rsplit("/", 1)[1])


def asyncapi_document(*, host: str = "localhost:8000", secure: bool = False) -> dict[str, Any]:
    """The AsyncAPI 3.0 description of ``/ws``: one channel per stream channel (``prices:{symbol}``
    and each user channel) plus ``socket`` for the ops and the per-socket messages."""
    routes = _routes_by_message_type()
    unknown = set(protocol.CONTROL_MESSAGE_TYPES) - set(_CONTROL) | set(protocol.CLIENT_OPS) - set(_OPS)
    if unknown:
        raise LookupError(f"stream messages without a documented payload: {sorted(unknown)}")

    messages: dict[str, Any] = {}
    for message_type in protocol.CONTROL_MESSAGE_TYPES:
        summary, payload = _CONTROL[message_type]
        messages[message_type] = {
            "name": message_type,
            "title": message_type,
            "summary": summary,
            "payload": payload,
        }
    for message_type, (_, event_types) in routes.items():
        messages[message_type] = _event_message(message_type, event_types)
    for op in protocol.CLIENT_OPS:
        summary, payload = _OPS[op]
        messages[f"op_{op}"] = {"name": op, "title": f"op: {op}", "summary": summary, "payload": payload}

    def refs(names: list[str]) -> dict[str, Any]:
        return {name: {"$ref": f"#/components/messages/{name}"} for name in names}

    socket_messages = [t for t in protocol.CONTROL_MESSAGE_TYPES if t not in ("snapshot", "price_update")]
    channels: dict[str, Any] = {
        "socket": {
            "address": "/ws",
            "title": "The socket itself",
            "description": "Ops the client sends and the messages about the socket, whatever it follows.",
            "messages": refs(socket_messages + [f"op_{op}" for op in protocol.CLIENT_OPS]),
        },
        "prices": {
            "address": protocol.PRICE_PREFIX + "{symbol}",
            "title": "Prices of one pair",
            "description": "Open to anonymous sockets. Any active pair; symbols are upper-cased.",
            "parameters": {"symbol": {"description": "A pair symbol, e.g. BTCUSD.", "examples": ["BTCUSD"]}},
            "messages": refs(["price_update"]),
        },
    }
    for channel in protocol.USER_CHANNELS:
        carried = [
            message_type
            for message_type, (route, _) in routes.items()
            if channel in route.channels or not route.channels
        ]
        channels[channel] = {
            "address": channel,
            "title": f"The user's {channel}",
            "description": "Signed-in sockets only. A snapshot on subscribe, then the user's events "
            "routed here, in seq order. Events routed to no channel in particular (risk, account) "
            "go to every socket following any user channel.",
            "messages": refs(["snapshot", *carried]),
        }

    operations: dict[str, Any] = {
        "sendOps": {
            "action": "receive",
            "channel": {"$ref": "#/channels/socket"},
            "title": "Ops from the client",
            "summary": "What the server accepts; any other op gets an unknown_op error.",
            "messages": [{"$ref": f"#/channels/socket/messages/op_{op}"} for op in protocol.CLIENT_OPS],
        },
        "socketMessages": {
            "action": "send",
            "channel": {"$ref": "#/channels/socket"},
            "title": "Messages about the socket",
            "messages": [{"$ref": f"#/channels/socket/messages/{name}"} for name in socket_messages],
        },
    }
    for name, channel in channels.items():
        if name == "socket":
            continue
        operations[f"{name}Updates"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "title": f"Updates on {channel['address']}",
            "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in channel["messages"]],
        }

    close_rows = "\n".join(
        f"| {int(code)} | `{protocol.CLOSE_ERROR_CODES[code]}` | {code.name.lower().replace('_', ' ')} |"
        for code in protocol.CloseCode
    )
    data_names = {_data_component(t) for _, types in routes.values() for t in types}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"{settings.SPECTACULAR_SETTINGS['TITLE']} stream",
            "version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "description": (
                "One WebSocket at `/ws` carries prices and the signed-in user's events; every message is a "
                'compact JSON text frame. Sign in with the first message `{"op": "auth", "token"}` or '
                "`?token=`; anonymous sockets may follow prices only. The server pings every heartbeat_ms "
                "and closes a socket that sends no pong in time.\n\n"
                "The REST API is described at /api/schema/ (Swagger UI at /api/docs/); the payload schemas "
                "here are the REST ones (Order, Fill, Position, Deposit).\n\n"
                "Close codes, each preceded by an `error` with the code shown:\n\n"
                "| close code | error code | why |\n| --- | --- | --- |\n" + close_rows
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "default": {"host": host, "protocol": "wss" if secure else "ws"},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": _component_closure(data_names, _openapi_components()),
        },
    }
