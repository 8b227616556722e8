from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from marqetfi.asgi import application

pytestmark = pytest.mark.asyncio


async def connect(headers: list[tuple[bytes, bytes]] | None = None) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, "/ws", headers=headers or [])
    connected, _ = await communicator.connect()
    return communicator, connected


async def test_hello_then_ping_is_answered_with_pong():
    ws, connected = await connect()
    assert connected
    hello = await ws.receive_json_from()
    assert hello["type"] == "hello"
    assert hello["heartbeat_ms"] == 30000 and hello["max_subscriptions"] > 0
    assert hello["session_id"] and hello["server_time"].endswith("Z")
    await ws.send_json_to({"op": "ping"})
    pong = await ws.receive_json_from()
    assert pong["type"] == "pong"
    await ws.disconnect()


async def test_malformed_and_unknown_messages_get_an_error_and_keep_the_socket_open():
    ws, _ = await connect()
    await ws.receive_json_from()
    await ws.send_to(text_data="{not json")
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_json_to({"op": "dance"})
    error = await ws.receive_json_from()
    assert error == {"type": "error", "code": "unknown_op", "message": "Unknown op 'dance'."}
    await ws.send_json_to({"op": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_deeply_nested_json_gets_an_error_and_keeps_the_socket_open():
    ws, _ = await connect()
    await ws.receive_json_from()
    await ws.send_to(text_data="[" * 100_000 + "]" * 100_000)
    assert (await ws.receive_json_from())["code"] == "invalid_message"
    await ws.send_json_to({"op": "ping"})
    pong = await ws.receive_json_from()
    assert pong["type"] == "pong" and pong["ts"].endswith("Z")
    await ws.disconnect()


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
