"""Django's ASGI handler with the middleware chain and the view run in one thread per request.

Under ASGI Django builds the middleware chain for async: each middleware that can run async
does, and Django's own (``MiddlewareMixin``: sessions, CSRF, authentication, messages, ...)
then hand every ``process_request`` / ``process_response`` hook to a thread and back
(``sync_to_async``); a sync-only middleware hands the rest of the chain back to the event loop
(``async_to_sync``), and a sync view goes to a thread again. On this stack that was about a
dozen hand-overs between the event loop and the request's thread per request, each a few
hundred microseconds of CPU under load. Every view here is sync, so the chain runs as it does
under WSGI: the whole request in its thread (one hand-over there, one back). Async views
would still work (Django runs them with ``async_to_sync``), at the cost of a hand-over.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class ThreadedChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # thread_sensitive: the request's own thread (ASGIHandler.handle opens a
        # ThreadSensitiveContext per request), as Django runs sync views under ASGI.
        response: HttpResponseBase = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        return response
