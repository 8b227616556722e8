"""The ``/ws`` consumer through Channels' communicator: protocol pieces, no server process."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from marqetfi.asgi import application
from marqetfi.core import events
from tests.accounts.factories import UserFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def connect(
    path: str = "/ws", headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect()
    return communicator, connected


async def opened(path: str = "/ws") -> WebsocketCommunicator:
    ws, connected = await connect(path)
    assert connected
    assert (await ws.receive_json_from())["type"] == "hello"
    return ws


async def next_of(ws: WebsocketCommunicator, kind: str, timeout: float = 3) -> dict[str, Any]:
    while True:
        message = await ws.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


async def closed_with(ws: WebsocketCommunicator, timeout: float = 3) -> tuple[list[dict[str, Any]], int]:
    """Messages until the close, and its code."""
    received: list[dict[str, Any]] = []
    while True:
        output = await ws.receive_output(timeout)
        if output["type"] == "websocket.close":
            return received, output.get("code", 1000)
        received.append(json.loads(output["text"]))


def token_for(user: Any, lifetime: timedelta | None = None) -> str:
    token = AccessToken.for_user(user)
    if lifetime is not None:
        token.set_exp(lifetime=lifetime)
    return str(token)


@database_sync_to_async
def new_user(**fields: Any) -> Any:
    return UserFactory(**fields)


# --- greeting and bad input ---------------------------------------------------------------


async def test_hello_states_the_heartbeat_and_the_limits_then_ping_is_answered_with_pong():
    ws, connected = await connect()
    assert connected
    hello = await ws.receive_json_from()
    assert hello["type"] == "hello"
    assert hello["heartbeat_ms"] == 30000 and hello["max_subscriptions"] == 100
    assert hello["limits"]["max_messages_per_second"] == 20
    assert hello["session_id"] and hello["server_time"].endswith("Z")
    await ws.send_json_to({"op": "ping"})
    pong = await ws.receive_json_from()
    assert pong["type"] == "pong"
    await ws.disconnect()


async def test_malformed_and_unknown_messages_get_an_error_and_keep_the_socket_open():
    ws = await opened()
    await ws.send_to(text_data="{not json")
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_to(text_data="[1, 2]")
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_json_to({"op": "dance"})
    error = await ws.receive_json_from()
    assert error == {"type": "error", "code": "unknown_op", "message": "Unknown op 'dance'."}
    await ws.send_json_to({"op": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_deeply_nested_json_gets_an_error_and_keeps_the_socket_open():
    ws = await opened()
    await ws.send_to(text_data="[" * 8000 + "]" * 8000)
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_json_to({"op": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_a_frame_above_the_size_limit_is_closed_as_too_big():
    ws = await opened()
    await ws.send_to(text_data='{"op":"ping","pad":"' + "x" * 20_000 + '"}')
    received, code = await closed_with(ws)
    assert code == 4013
    assert received[-1]["code"] == "message_too_large"


async def test_a_flood_gets_rate_limited_errors_then_a_close(settings):
    settings.STREAM_MAX_MESSAGES_PER_SECOND = 5
    ws = await opened()
    for _ in range(12):
        await ws.send_json_to({"op": "ping"})
    received, code = await closed_with(ws)
    assert code == 4029
    assert [m["type"] for m in received[:5]] == ["pong"] * 5
    assert {m.get("code") for m in received[5:]} == {"rate_limited"}


async def test_native_apps_without_origin_connect_but_foreign_browser_pages_do_not():
    cases = {
        "native app": ([(b"host", b"localhost")], True),
        "foreign page": ([(b"host", b"localhost"), (b"origin", b"https://evil.example")], False),
        "own page": ([(b"host", b"localhost"), (b"origin", b"http://localhost")], True),
    }
    for name, (headers, expected) in cases.items():
        ws, connected = await connect(headers=headers)
        assert connected is expected, name
        await ws.disconnect()


# --- auth -------------------------------------------------------------------------------


async def test_auth_by_first_message_then_user_channels_are_allowed():
    user = await new_user()
    ws = await opened()
    await ws.send_json_to({"op": "subscribe", "channels": ["orders"]})
    refused = await ws.receive_json_from()
    assert (refused["code"], refused["details"]) == ("auth_required", {"channels": ["orders"]})
    assert (await ws.receive_json_from()) == {"type": "subscribed", "channels": []}

    await ws.send_json_to({"op": "auth", "token": token_for(user)})
    authenticated = await ws.receive_json_from()
    assert authenticated["type"] == "authenticated" and authenticated["user_id"] == str(user.pk)
    await ws.send_json_to({"op": "subscribe", "channels": ["orders", "deposits"]})
    assert await ws.receive_json_from() == {"type": "subscribed", "channels": ["deposits", "orders"]}
    snapshots = [await ws.receive_json_from(), await ws.receive_json_from()]
    assert {(s["channel"], s["snapshot"], s["seq"]) for s in snapshots} == {
        ("orders", True, 0),
        ("deposits", True, 0),
    }
    assert all(s["data"] == [] for s in snapshots)
    await ws.disconnect()


async def test_auth_by_query_token():
    user = await new_user()
    ws = await opened(f"/ws?token={token_for(user)}")
    assert (await ws.receive_json_from())["type"] == "authenticated"
    await ws.disconnect()


@pytest.mark.parametrize(
    ("token", "code", "error"),
    [
        ("not-a-jwt", 4001, "auth_failed"),
        ("expired", 4002, "token_expired"),
        ("refresh", 4001, "auth_failed"),
        ("inactive", 4003, "forbidden"),
    ],
)
async def test_bad_tokens_close_with_their_code(token, code, error):
    user = await new_user(is_active=token != "inactive")
    raw = {
        "expired": token_for(user, lifetime=-timedelta(seconds=django_settings.SIMPLE_JWT["LEEWAY"] + 5)),
        "refresh": str(await database_sync_to_async(RefreshToken.for_user)(user)),
        "inactive": token_for(user),
    }.get(token, token)
    ws = await opened()
    await ws.send_json_to({"op": "auth", "token": raw})
    received, close_code = await closed_with(ws)
    assert close_code == code
    assert received[-1]["code"] == error


@pytest.mark.parametrize("revocation", ["logout", "sign_out_everywhere"])
async def test_a_revoked_access_token_cannot_sign_in(revocation):
    """Logout denies the session's access token; signing out everywhere (a new token version,
    as a password change or reset does) refuses every token minted before."""

    def sign_in_then_revoke() -> str:
        UserFactory(email="revoked@example.com")
        client = APIClient()
        tokens = client.post(
            "/api/v1/auth/login",
            {"email": "revoked@example.com", "password": "correct horse battery staple"},
            format="json",
        ).json()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        if revocation == "logout":
            response = client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
        else:
            response = client.post("/api/v1/auth/logout/all")
        assert response.status_code == 204
        return str(tokens["access"])

    access = await database_sync_to_async(sign_in_then_revoke)()
    ws = await opened()
    await ws.send_json_to({"op": "auth", "token": access})
    received, close_code = await closed_with(ws)
    assert close_code == 4001
    assert received[-1]["code"] == "auth_failed"
    assert received[-1]["message"] == "The token has been revoked; sign in again."


async def test_a_token_expiring_while_connected_closes_the_socket():
    user = await new_user()
    ws = await opened()
    token = AccessToken.for_user(user)
    token.set_exp(from_time=timezone.now(), lifetime=timedelta(seconds=1))
    await ws.send_json_to({"op": "auth", "token": str(token)})
    assert (await ws.receive_json_from())["type"] == "authenticated"
    received, code = await closed_with(ws, timeout=4)
    assert code == 4002 and received[-1]["code"] == "token_expired"


async def test_sockets_beyond_the_per_user_limit_are_refused(settings):
    settings.STREAM_MAX_SOCKETS_PER_USER = 1
    user = await new_user()
    first = await opened(f"/ws?token={token_for(user)}")
    assert (await first.receive_json_from())["type"] == "authenticated"
    second = await opened(f"/ws?token={token_for(user)}")
    received, code = await closed_with(second)
    assert code == 4010 and received[-1]["code"] == "too_many_sockets"
    await first.send_json_to({"op": "ping"})
    assert (await first.receive_json_from())["type"] == "pong"
    await first.disconnect()
    third = await opened(f"/ws?token={token_for(user)}")  # a closed socket frees its place
    assert (await third.receive_json_from())["type"] == "authenticated"
    await third.disconnect()


# --- subscriptions ------------------------------------------------------------------------


async def test_unknown_channels_get_an_error_and_the_socket_stays_open():
    ws = await opened()
    await ws.send_json_to({"op": "subscribe", "channels": ["prices:NOPE", "weather"]})
    error = await ws.receive_json_from()
    assert error["code"] == "unknown_channel"
    assert sorted(error["details"]["channels"]) == ["prices:NOPE", "weather"]
    assert await ws.receive_json_from() == {"type": "subscribed", "channels": []}
    await ws.send_json_to({"op": "subscribe", "channels": "orders"})
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.disconnect()


async def test_cancel_on_disconnect_needs_auth_and_a_bounded_timeout():
    user = await new_user()
    ws = await opened()
    await ws.send_json_to({"op": "cancel_on_disconnect", "timeout_ms": 5000})
    assert (await ws.receive_json_from())["code"] == "auth_required"
    await ws.send_json_to({"op": "auth", "token": token_for(user)})
    await next_of(ws, "authenticated")
    for bad in (10, 10_000_000, "5000", True):
        await ws.send_json_to({"op": "cancel_on_disconnect", "timeout_ms": bad})
        assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_json_to({"op": "cancel_on_disconnect", "timeout_ms": 5000})
    ack = await ws.receive_json_from()
    assert ack == {"type": "cancel_on_disconnect", "enabled": True, "timeout_ms": 5000}
    await ws.send_json_to({"op": "cancel_on_disconnect", "timeout_ms": 0})
    assert (await ws.receive_json_from())["enabled"] is False
    await ws.disconnect()


# --- heartbeat ----------------------------------------------------------------------------


async def test_a_socket_that_answers_pings_stays_open_and_one_that_does_not_is_closed(settings):
    settings.STREAM_HEARTBEAT_MS = 200
    settings.STREAM_PONG_TIMEOUT_MS = 200
    answering, silent = await opened(), await opened()
    for _ in range(3):
        ping = await next_of(answering, "ping")
        assert ping["ts"].endswith("Z")
        await answering.send_json_to({"op": "pong"})
    received, code = await closed_with(silent)
    assert code == 4008 and received[-1]["code"] == "heartbeat_timeout"
    await answering.send_json_to({"op": "ping"})
    assert (await next_of(answering, "pong"))["type"] == "pong"
    await answering.disconnect()


# --- user events --------------------------------------------------------------------------


@database_sync_to_async
def publish(user: Any, type: str, **data: Any) -> int:
    return events.publish(user_id=user.pk, type=type, data=data).seq


async def test_events_reach_the_sockets_of_the_matching_channel_only_and_resume_fills_the_gap():
    user = await new_user()
    orders = await opened(f"/ws?token={token_for(user)}")
    await next_of(orders, "authenticated")
    await orders.send_json_to({"op": "subscribe", "channels": ["orders"]})
    await next_of(orders, "snapshot")
    positions = await opened(f"/ws?token={token_for(user)}")
    await next_of(positions, "authenticated")
    await positions.send_json_to({"op": "subscribe", "channels": ["positions"]})
    await next_of(positions, "snapshot")

    await publish(user, "order.created", id="o1", resource_version=1)
    await publish(user, "position.opened", id="p1", resource_version=1)
    await publish(user, "risk.margin_call", id="p1")
    await publish(user, "webhook.test")

    first = await orders.receive_json_from()
    assert (first["type"], first["seq"], first["event"], first["data"]["id"]) == (
        "order_update",
        1,
        "order.created",
        "o1",
    )
    assert first["id"].startswith("evt_") and first["created_at"].endswith("Z")
    assert (await orders.receive_json_from())["type"] == "risk"
    assert [(await positions.receive_json_from())["type"] for _ in range(2)] == ["position_update", "risk"]
    assert await orders.receive_nothing(timeout=0.3)

    await positions.disconnect()
    await publish(user, "position.updated", id="p1", resource_version=2)
    again = await opened(f"/ws?token={token_for(user)}")
    await next_of(again, "authenticated")
    await again.send_json_to({"op": "subscribe", "channels": ["positions", "orders"]})
    await next_of(again, "subscribed")
    await again.send_json_to({"op": "resume", "after_seq": 1})
    replay = []
    while (message := await again.receive_json_from())["type"] != "resumed":
        if not message.get("snapshot"):
            replay.append((message["seq"], message["type"]))
    assert replay == [(2, "position_update"), (3, "risk"), (5, "position_update")]
    assert message["last_seq"] == 5
    await orders.disconnect()
    await again.disconnect()


async def test_an_event_that_arrives_before_its_predecessor_waits_for_it():
    user = await new_user()
    ws = await opened(f"/ws?token={token_for(user)}")
    await next_of(ws, "authenticated")
    await ws.send_json_to({"op": "subscribe", "channels": ["orders"]})
    await next_of(ws, "snapshot")
    from marqetfi.core.models import Event

    @database_sync_to_async
    def write_unsent() -> None:  # seq 1 committed but its dispatch still on the way
        Event.objects.create(user=user, seq=1, type="order.created", data={"id": "o1"})

    await write_unsent()
    from marqetfi.core.realtime import stream_publish, user_stream_channel

    await database_sync_to_async(stream_publish)(
        user_stream_channel(user.pk),
        {"id": "evt_x", "type": "order.filled", "seq": 2, "created_at": "2026-01-01T00:00:00Z", "data": {}},
    )
    seqs = [(await ws.receive_json_from())["seq"] for _ in range(2)]
    assert seqs == [1, 2]
    await ws.disconnect()


async def test_the_hub_hands_every_published_message_to_a_subscribed_sink_in_order():
    from marqetfi.core.realtime import stream_publish

    consumer_channel = "prices:BTCUSD"

    def tick(bid: str) -> dict[str, Any]:
        return {
            "symbol": "BTCUSD",
            "bid": bid,
            "ask": str(int(bid) + 1),
            "mid": bid,
            "ts": "2026-01-01T00:00:00Z",
        }

    # Subscribe through the hub directly: no pair catalogue in this test.
    from marqetfi.core.stream_hub import stream_hub

    hub = stream_hub()
    received: list[Any] = []

    class Sink:
        def stream_message(self, message: Any) -> None:
            received.append(message.data["bid"])

        def stream_resync(self, channel: str) -> None:
            pass

    sink = Sink()
    await hub.subscribe(consumer_channel, sink)
    for bid in ("100", "101", "101", "102"):
        await database_sync_to_async(stream_publish)(consumer_channel, tick(bid))
    for _ in range(50):
        if len(received) == 4:
            break
        await asyncio.sleep(0.02)
    assert received == ["100", "101", "101", "102"]
    await hub.unsubscribe(consumer_channel, sink)
