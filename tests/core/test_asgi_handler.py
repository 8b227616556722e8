"""Requests run on threads kept between requests (``marqetfi.core.asgi_handler``), one thread
per request at a time, with the request's database connection closed when it ends."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import connection
from django.test import override_settings

from marqetfi.core.asgi_handler import ThreadedChainASGIHandler
from tests.core import thread_urls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.core.thread_urls")]


async def get(app: Any, query: str = "") -> dict[str, Any]:
    sent: list[Mapping[str, Any]] = []
    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # the client stays connected; Django cancels this wait
        raise AssertionError("not reached")

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/thread",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "scheme": "http",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent
    body: dict[str, Any] = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return body


def request_threads() -> set[int]:
    return {t.ident for t in threading.enumerate() if t.name.startswith("request") and t.ident}


@override_settings(ALLOWED_HOSTS=["testserver"])
def test_requests_one_after_another_run_on_one_kept_thread_and_close_their_connection() -> None:
    app = ThreadedChainASGIHandler()
    signal_threads: list[int] = []
    closed_at_the_end: list[bool] = []

    def started(**kwargs: Any) -> None:
        signal_threads.append(threading.get_ident())

    def finished(**kwargs: Any) -> None:
        # Connected after Django's close_old_connections, so it runs after it.
        signal_threads.append(threading.get_ident())
        closed_at_the_end.append(connection.connection is None)

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        answers = [asyncio.run(get(app)) for _ in range(20)]
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    threads = {answer["thread"] for answer in answers}
    assert len(threads) == 1  # not a new thread per request
    assert threads <= request_threads()  # and it is still there, waiting for the next request
    # Django's signal receivers ran on the request's own thread, and closed (on PostgreSQL:
    # gave back to the pool) the connection each request used.
    assert set(signal_threads) == threads and len(signal_threads) == 40
    assert closed_at_the_end == [True] * 20


@override_settings(ALLOWED_HOSTS=["testserver"])
def test_requests_at_once_each_have_a_thread_and_later_requests_reuse_those_threads() -> None:
    app = ThreadedChainASGIHandler()

    async def three_at_once(round_name: str) -> set[int]:
        names = [f"{round_name}-{n}" for n in range(3)]
        for name in names:
            thread_urls.held[name] = threading.Event()
        tasks = [asyncio.create_task(get(app, f"hold={name}")) for name in names]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in tasks)  # all three are held in their views at once
        for name in names:
            thread_urls.held[name].set()
        return {answer["thread"] for answer in await asyncio.gather(*tasks)}

    async def two_rounds() -> tuple[set[int], set[int]]:
        return await three_at_once("first"), await three_at_once("second")

    first, second = asyncio.run(two_rounds())
    assert len(first) == 3
    assert second == first
