"""Django's ASGI handler with each request run on one thread, taken from threads kept between
requests.

Under ASGI Django builds the middleware chain for async: each middleware that can run async
does, and Django's own (``MiddlewareMixin``: sessions, CSRF, authentication, messages, ...)
then hand every ``process_request`` / ``process_response`` hook to a thread and back
(``sync_to_async``); a sync-only middleware hands the rest of the chain back to the event loop
(``async_to_sync``), and a sync view goes to a thread again. On this stack that was about a
dozen hand-overs between the event loop and the request's thread per request, each a few
hundred microseconds of CPU under load. Every view here is sync, so the chain runs as it does
under WSGI: the whole request in its thread (one hand-over there, one back). Async views
would still work (Django runs them with ``async_to_sync``), at the cost of a hand-over.

Which thread: Django opens a ``ThreadSensitiveContext`` per request, and asgiref then starts a
new thread for it (a one-thread executor per context) and stops it when the request ends: a
thread started and joined per request, and a new database wrapper made for it. Here the
request's context runs on a one-thread executor kept from earlier requests, as a WSGI server's
threads are: the request's signal receivers, middleware, view and ``response.close()`` still
run on one thread, and its database connection is still closed (given back to the pool) by
``request_finished``. There are as many executors as requests were ever in flight at once,
which the admission limit bounds (``WEB_MAX_REQUESTS_IN_FLIGHT``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class ThreadedChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        # Idle request threads, the most recently used last (its stack and caches are warm).
        self._idle_executors: list[ThreadPoolExecutor] = []

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = (
            self._idle_executors.pop()
            if self._idle_executors
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        )
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # Only once nothing of the request can still run on it (the context has exited).
            self._idle_executors.append(executor)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # thread_sensitive: the request's own thread (the context's executor above), as Django
        # runs sync views under ASGI.
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        return response
