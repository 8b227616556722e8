"""A bound on the HTTP requests a web process runs in Django at once (ASGI, around Django).

Django's ASGI handler runs each request's sync code on a thread of its own, and with
PostgreSQL each running request holds a database connection. Nothing else bounds them: a
process that falls behind starts ever more threads and connections, each slowing the others,
until PostgreSQL refuses everyone. Here at most ``WEB_MAX_REQUESTS_IN_FLIGHT`` requests run;
the next ones wait on the event loop (a waiting request costs a coroutine, no thread and no
connection) in arrival order. One that waited ``WEB_QUEUE_TIMEOUT`` seconds is answered 503
``server_busy`` in the API's error shape, with ``Retry-After``: the client learns the
server is overloaded instead of hanging.

It sits behind the cached price route (``pricing.fast_path``), so cached price reads, which
need neither a thread nor the database, never wait here. WebSocket connections are not
counted (their database work has its own bounded threads, ``streams.db``).
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from django.conf import settings

from marqetfi.core.api import error_body
from marqetfi.core.metrics import (
    WEB_QUEUE_WAIT_SECONDS,
    WEB_REQUESTS_IN_FLIGHT,
    WEB_REQUESTS_QUEUED,
    WEB_REQUESTS_SHED,
)
from marqetfi.core.middleware import valid_request_id
from marqetfi.core.security_headers import asgi_request_is_secure, asgi_security_headers

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVER_BUSY: Final = "server_busy"
RETRY_AFTER_SECONDS: Final = 1
_BUSY_BODY: Final = json.dumps(
    error_body(
        SERVER_BUSY,
        "The server is busy; retry shortly.",
        {"retry_after_seconds": RETRY_AFTER_SECONDS},
    ),
    separators=(",", ":"),
).encode()


class RequestAdmission:
    """Runs ``app`` for at most ``limit`` HTTP requests at once; see the module doc."""

    def __init__(self, app: ASGIApp, *, limit: int | None = None, timeout: float | None = None) -> None:
        self.app = app
        self.limit = limit if limit is not None else settings.WEB_MAX_REQUESTS_IN_FLIGHT
        self.timeout = timeout if timeout is not None else settings.WEB_QUEUE_TIMEOUT
        if self.limit < 1:
            raise ValueError(f"WEB_MAX_REQUESTS_IN_FLIGHT must be at least 1, not {self.limit}")
        self._request_id_header = settings.REQUEST_ID_HEADER.lower().encode()
        # A semaphore belongs to one event loop: daphne runs one, a test session may run several.
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gate = self._gate()
        if gate.locked():
            started = time.monotonic()
            WEB_REQUESTS_QUEUED.inc()
            try:
                # A turn granted just as the timeout fires is kept or passed on, never lost.
                await asyncio.wait_for(gate.acquire(), self.timeout)
            except TimeoutError:
                WEB_REQUESTS_SHED.inc()
                WEB_QUEUE_WAIT_SECONDS.observe(time.monotonic() - started)
                await self._busy(scope, send)
                return
            finally:
                WEB_REQUESTS_QUEUED.dec()
            WEB_QUEUE_WAIT_SECONDS.observe(time.monotonic() - started)
        else:
            await gate.acquire()  # free: returns at once
            WEB_QUEUE_WAIT_SECONDS.observe(0.0)
        WEB_REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            WEB_REQUESTS_IN_FLIGHT.dec()
            gate.release()

    def _gate(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(self.limit)
        return gate

    async def _busy(self, scope: Scope, send: Send) -> None:
        """503 ``server_busy``, echoing a well-formed ``X-Request-ID`` as Django would."""
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(_BUSY_BODY)),
            (b"retry-after", b"%d" % RETRY_AFTER_SECONDS),
        ]
        request_headers = dict(scope.get("headers") or ())
        headers += asgi_security_headers(secure=asgi_request_is_secure(scope, request_headers))
        incoming = request_headers.get(self._request_id_header)
        if incoming is not None and valid_request_id(incoming.decode("latin-1")):
            headers.append((self._request_id_header, incoming))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": _BUSY_BODY})
