"""Views and a middleware that reach a Redis nobody listens on, or lose the database, as a
request does during an outage."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import redis
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marqetfi.embedded import free_port


def redis_nobody_listens_on() -> None:
    """A real redis-py call to a closed port: ``ConnectionError`` (refused)."""
    redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    ).ping()


class RedisDownApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        redis_nobody_listens_on()
        return Response({"ok": True})


class DatabaseDownApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        # What Django raises for a connection PostgreSQL dropped (psycopg's error, wrapped).
        raise OperationalError("consuming input failed: server closed the connection unexpectedly")


class SqliteBugApi(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        try:
            sqlite3.connect(":memory:").execute("SELECT * FROM no_such_table")
        except sqlite3.OperationalError as exc:  # wrapped as Django's SQLite backend does
            raise OperationalError(*exc.args) from exc
        return Response({"ok": True})


def plain_view_redis_down(request: HttpRequest) -> HttpResponse:
    redis_nobody_listens_on()
    return HttpResponse("ok")


class RedisDownMiddleware:
    """Reaches the closed Redis on ``?redis_down=1``, before any view (as the throttle or a
    cache read in a middleware would)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.GET.get("redis_down"):
            redis_nobody_listens_on()
        return self.get_response(request)


urlpatterns = [
    path("api/t/redis-down", RedisDownApi.as_view()),
    path("api/t/database-down", DatabaseDownApi.as_view()),
    path("api/t/plain-redis-down", plain_view_redis_down),
    path("api/t/sqlite-bug", SqliteBugApi.as_view()),
    path("", include("marqetfi.urls")),
]

handler500 = "marqetfi.core.api.server_error"
