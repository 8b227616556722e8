"""A web process's database connections stay bounded under load (PostgreSQL only).

Real daphne processes on the session's test database, with a small in-flight limit and
connection pool. ``pg_stat_activity`` tells their connections apart by ``application_name``
(``DB_APPLICATION_NAME``, one per server started here). Where a test needs requests or
socket sign-ins to stay in progress, a second connection holds an ``ACCESS EXCLUSIVE`` lock
on the users table (every JWT sign-in reads it) until the test has seen what it waits for,
so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.db import connection

from accounts.models import User
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import DaphneServer, _database_url, start_daphne, start_process
from tests.e2e.test_streams import Socket, token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 30.0


@pytest.fixture(autouse=True)
def _postgresql_only(db: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("connection pooling is configured for PostgreSQL only")


@contextmanager
def web_server(e2e_env: dict[str, str], log_dir: Path, **settings: str) -> Iterator[tuple[DaphneServer, str]]:
    """A daphne with these settings and an application name of its own."""
    application_name = f"marqetfi-web-test-{uuid.uuid4().hex[:8]}"
    env = {
        **e2e_env,
        "DB_APPLICATION_NAME": application_name,
        "THROTTLE_USER": "100000/min",
        "THROTTLE_ANON": "100000/min",
        **settings,
    }
    server = start_daphne(env, log_dir)
    try:
        yield server, application_name
    finally:
        server.process.stop()


def observer() -> psycopg.Connection[Any]:
    return psycopg.connect(_database_url(), autocommit=True)


def backends(observing: psycopg.Connection[Any], application_name: str, waiting_on_lock: bool = False) -> int:
    """The server's connections to the test database (those waiting for a lock, if asked)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"
    )
    if waiting_on_lock:
        query += " AND wait_event_type = 'Lock'"
    row = observing.execute(query, (application_name,)).fetchone()
    return int(row[0]) if row else 0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"not seen within {WAIT_SECONDS} s: {what}")


@contextmanager
def users_table_locked() -> Iterator[None]:
    """Every query on the users table (each JWT sign-in) waits until the block ends."""
    with psycopg.connect(_database_url()) as locking:
        locking.execute(f"LOCK TABLE {User._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        yield
        locking.rollback()


def test_fifty_concurrent_requests_get_200_over_no_more_connections_than_the_pool(
    e2e_env: dict[str, str], e2e_log_dir: Path
) -> None:
    user = UserFactory()
    headers = {"Authorization": f"Bearer {token(user)}"}
    settings = {"WEB_MAX_REQUESTS_IN_FLIGHT": "2", "DB_POOL_MAX_SIZE": "3", "WEB_QUEUE_TIMEOUT": "120"}
    with web_server(e2e_env, e2e_log_dir, **settings) as (server, application_name), observer() as observing:
        seen: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                seen.append(backends(observing, application_name))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            with (
                httpx.Client(base_url=server.base_url, timeout=120.0, headers=headers) as client,
                ThreadPoolExecutor(max_workers=50) as pool,
            ):
                responses = list(pool.map(lambda _: client.get("/api/v1/orders"), range(50)))
        finally:
            done.set()
            sampler.join()

    assert [response.status_code for response in responses] == [200] * 50
    assert all(response.json() == {"results": [], "next": None} for response in responses)
    assert max(seen) <= 3, max(seen)
    assert max(seen) >= 1  # the sampler saw the server's connections at all


def test_a_request_that_waits_past_the_queue_timeout_is_answered_503_server_busy(
    e2e_env: dict[str, str], e2e_log_dir: Path
) -> None:
    user = UserFactory()
    headers = {"Authorization": f"Bearer {token(user)}", "X-Request-ID": "busy-1"}
    settings = {"WEB_MAX_REQUESTS_IN_FLIGHT": "1", "DB_POOL_MAX_SIZE": "2", "WEB_QUEUE_TIMEOUT": "0.5"}
    with (
        web_server(e2e_env, e2e_log_dir, **settings) as (server, application_name),
        observer() as observing,
        httpx.Client(base_url=server.base_url, timeout=WAIT_SECONDS, headers=headers) as client,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):
        with users_table_locked():
            running = pool.submit(client.get, "/api/v1/orders")
            wait_for(
                lambda: backends(observing, application_name, waiting_on_lock=True) == 1,
                "the request running",
            )
            queued = [pool.submit(client.get, "/api/v1/orders") for _ in range(2)]
            busy = [future.result() for future in queued]  # answered while the first still runs
            assert not running.done()
        finished = running.result()

    assert finished.status_code == 200
    for response in busy:
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.headers["X-Request-ID"] == "busy-1"
        assert response.json() == {
            "error": {
                "code": "server_busy",
                "message": "The server is busy; retry shortly.",
                "details": {"retry_after_seconds": 1},
            }
        }


def test_socket_sign_ins_run_on_several_threads_and_every_socket_gets_its_snapshot(
    e2e_env: dict[str, str], e2e_log_dir: Path
) -> None:
    users = [UserFactory() for _ in range(20)]
    with (
        web_server(e2e_env, e2e_log_dir, STREAM_DB_THREADS="4") as (server, application_name),
        observer() as observing,
    ):
        with users_table_locked():
            sockets = [Socket(server, f"?token={token(user)}") for user in users]
            # Four sign-ins wait for the lock at once: the socket database work is not serialized
            # on one thread (which would show one waiting), and stays within its four threads.
            wait_for(
                lambda: backends(observing, application_name, waiting_on_lock=True) == 4,
                "four sign-ins waiting in PostgreSQL at once",
            )
            assert backends(observing, application_name, waiting_on_lock=True) == 4
        try:
            for socket, user in zip(sockets, users, strict=True):
                assert socket.recv_type("authenticated", timeout=WAIT_SECONDS)["user_id"] == str(user.pk)
            for socket in sockets:
                socket.send({"op": "subscribe", "channels": ["orders", "positions"]})
            for socket in sockets:
                assert socket.recv_type("subscribed", timeout=WAIT_SECONDS)["channels"] == [
                    "orders",
                    "positions",
                ]
                snapshots = [socket.recv(timeout=WAIT_SECONDS) for _ in range(2)]
                assert {(s["channel"], s.get("snapshot")) for s in snapshots} == {
                    ("orders", True),
                    ("positions", True),
                }
        finally:
            for socket in sockets:
                socket.close()


def test_the_price_feed_keeps_its_connections_across_ticks(
    e2e_env: dict[str, str], e2e_log_dir: Path, market: None
) -> None:
    """The feed's hook threads touch the database on every tick (the paper venue's resting
    orders); each keeps one connection instead of opening a PostgreSQL backend per tick."""
    application_name = f"marqetfi-feed-test-{uuid.uuid4().hex[:8]}"
    env = {**e2e_env, "DB_APPLICATION_NAME": application_name}
    feed = start_process(
        "feed", [sys.executable, "manage.py", "pricefeed", "--interval", "0.1"], env, e2e_log_dir
    )
    seen: set[int] = set()
    try:
        with observer() as observing:

            def backend_pids() -> set[int]:
                rows = observing.execute(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name = %s",
                    (application_name,),
                ).fetchall()
                return {int(row[0]) for row in rows}

            wait_for(lambda: bool(backend_pids()), "the feed's first connection")
            deadline = time.monotonic() + 5  # about 50 polling rounds, each a tick per listed pair
            while time.monotonic() < deadline:
                if not feed.alive():
                    feed.fail("the price feed exited")
                seen |= backend_pids()
                time.sleep(0.02)
    finally:
        feed.stop()
    # The main thread, the venue fetch threads and the four hook threads: a fixed set, not
    # one per tick.
    assert 0 < len(seen) <= 8, f"{len(seen)} backends over 5 s of ticks"
