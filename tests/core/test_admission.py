"""The in-flight limit in front of Django (``marqetfi.core.admission``), driven over ASGI.

The app behind it is a stand-in that holds each request until the test lets it go, so what
runs and what waits is decided by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import pytest

from marqetfi.core.admission import RequestAdmission


class HeldApp:
    """Answers 200 once the test releases the request; counts what runs at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most_running = 0
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = scope["path"]
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.started.append(name)
        try:
            await self.release.setdefault(name, asyncio.Event()).wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.running -= 1


async def call(
    app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> list[Mapping[str, Any]]:
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers or []}
    await app(scope, receive, send)
    return sent


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_beyond_the_limit_wait_and_run_in_arrival_order() -> None:
    held = HeldApp()
    admission = RequestAdmission(held, limit=2, timeout=30)
    calls = [asyncio.ensure_future(call(admission, f"/r{n}")) for n in range(5)]
    await settle()
    assert held.started == ["/r0", "/r1"]
    for n in range(5):
        held.release.setdefault(f"/r{n}", asyncio.Event()).set()
        await settle()
    answers = await asyncio.gather(*calls)
    assert held.started == ["/r0", "/r1", "/r2", "/r3", "/r4"]
    assert held.most_running == 2
    assert [answer[0]["status"] for answer in answers] == [200] * 5


async def test_a_request_that_waited_past_the_timeout_gets_503_server_busy_and_frees_nothing() -> None:
    held = HeldApp()
    admission = RequestAdmission(held, limit=1, timeout=0.05)
    first = asyncio.ensure_future(call(admission, "/first"))
    await settle()
    busy = await call(admission, "/second", headers=[(b"x-request-id", b"abc-1")])
    assert busy[0]["status"] == 503
    headers = dict(busy[0]["headers"])
    assert headers[b"retry-after"] == b"1"
    assert headers[b"x-request-id"] == b"abc-1"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(busy[1]["body"]) == {
        "error": {
            "code": "server_busy",
            "message": "The server is busy; retry shortly.",
            "details": {"retry_after_seconds": 1},
        }
    }
    assert held.started == ["/first"]
    held.release["/first"].set()
    assert (await first)[0]["status"] == 200
    # the turn came back: the next request runs at once
    held.release["/third"] = asyncio.Event()
    held.release["/third"].set()
    assert (await call(admission, "/third"))[0]["status"] == 200


async def test_a_request_that_fails_gives_its_turn_back() -> None:
    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    admission = RequestAdmission(failing, limit=1, timeout=0.05)
    for _ in range(3):  # a turn kept by a failed request would make the next one wait, then 503
        with pytest.raises(RuntimeError):
            await call(admission, "/x")


async def test_websocket_scopes_pass_untouched() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    admission = RequestAdmission(app, limit=1, timeout=0.05)
    await admission({"type": "websocket", "path": "/ws"}, None, None)  # type: ignore[arg-type]
    assert seen == ["websocket"]


@pytest.mark.parametrize(("scheme", "hsts"), [("http", False), ("https", True)])
async def test_server_busy_carries_the_security_headers(scheme: str, hsts: bool) -> None:
    held = HeldApp()
    admission = RequestAdmission(held, limit=1, timeout=0.05)
    first = asyncio.ensure_future(call(admission, "/first"))
    await settle()
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    await admission(
        {"type": "http", "method": "GET", "path": "/busy", "headers": [], "scheme": scheme}, receive, send
    )
    held.release["/first"].set()
    await first

    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 503
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-security-policy"] == b"frame-ancestors 'none'"
    assert headers[b"referrer-policy"] == b"same-origin"
    assert headers[b"cross-origin-opener-policy"] == b"same-origin"
    assert (b"strict-transport-security" in headers) is hsts
