"""Faults survived by real processes: Redis stopped and started again under a running web
process and worker, PostgreSQL "restarted" (every connection dropped, new ones refused, then
accepted again) under a running web process.

Each test prints its measured figures (``FAULT ...`` lines, shown with ``-s``); the README's
faults table quotes them. Assertions are on what a client observes: statuses, bodies, rows,
webhook requests received.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from ledger.services import balance_adjust
from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_set
from marqetfi.core.models import Event
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import DaphneServer, ManagedProcess, start_daphne
from tests.e2e.faults import RestartableRedis, TcpProxy, Timed, start_worker_on_own_broker
from tests.e2e.test_streams import token
from tests.e2e.test_webhooks_worker import endpoint_for
from tests.webhooks.receiver import Receiver, running_receiver
from trading.models import Order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 30.0
# A request during an outage is answered within this (Redis: its 2 s socket timeouts; the
# database: DB_POOL_TIMEOUT below), with a margin for a busy machine.
OUTAGE_ANSWER_SECONDS = 8.0
DB_POOL_TIMEOUT = "3"
RECOVERY_SECONDS = 15.0  # measured 0.06-4.4 s; the margin is for a busy machine

ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "100", "leverage": "2"}


def until(condition: Callable[[], bool], what: str, *processes: ManagedProcess) -> float:
    """Seconds until ``condition`` held (polled); fails after WAIT_SECONDS, with the output of
    ``processes``."""
    started = time.monotonic()
    while time.monotonic() - started < WAIT_SECONDS:
        try:
            if condition():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    logs = "".join(f"\n--- {process.name} ---\n{process.output()}" for process in processes)
    pytest.fail(f"not seen within {WAIT_SECONDS} s: {what}{logs}")


def assert_unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["details"] == {"retry_after_seconds": 5}
    assert body["error"]["message"]


def trader(staff: Any) -> Any:
    user: Any = UserFactory()
    balance_adjust(user=user, amount=Decimal("10000"), reason="e2e funding", actor=staff)
    return user


@pytest.fixture
def private_redis() -> Iterator[RestartableRedis]:
    redis = RestartableRedis()
    redis.start()
    yield redis
    redis.stop()


def every_event_delivered(receiver: Receiver, user: Any, after: httpx.Response) -> bool:
    """Whether every event of the user, the order placed after the outage included, reached
    the receiver (deduplicated by ``webhook-id``, as a receiver does)."""
    events = {event.public_id for event in Event.objects.filter(user=user)}
    about_after = any(after.json()["id"].encode() in request.body for request in receiver.received)
    return about_after and events == set(receiver.webhook_ids())


def test_redis_stopped_and_started_answers_503_then_recovers_without_losing_anything(
    e2e_env: dict[str, str], e2e_log_dir: Path, market: None, staff: Any, private_redis: RestartableRedis
) -> None:
    user = trader(staff)
    headers = {"Authorization": f"Bearer {token(user)}"}
    env = {
        **e2e_env,
        "REDIS_URL": private_redis.url,
        "CELERY_QUEUE": f"faults-{uuid.uuid4().hex[:8]}",
        "THROTTLE_USER": "100000/min",
        "THROTTLE_ANON": "100000/min",
        # A delivery whose task died with the broker is scheduled again by the due sweep (beat,
        # every 15 s, for deliveries overdue by 30 s); scaled down here, the test runs the sweep.
        "WEBHOOK_SWEEP_GRACE_SECONDS": "1",
        "WEBHOOK_ATTEMPT_LEASE_MARGIN_SECONDS": "1",
    }
    app_setting_set(
        key="webhook_retry_policy",
        value={"max_retries": 3, "base_delay_seconds": 1, "max_delay_seconds": 4, "timeout_seconds": 2},
        actor=None,
    )
    server = start_daphne(env, e2e_log_dir)
    worker, broker = start_worker_on_own_broker(env, e2e_log_dir)
    try:
        with (
            running_receiver() as receiver,
            httpx.Client(base_url=server.base_url, timeout=WAIT_SECONDS, headers=headers) as client,
        ):
            endpoint_for(user, receiver.url)
            before = client.post("/api/v1/orders", json=ORDER)
            assert before.status_code == 201, before.text

            private_redis.down()
            timed = Timed()
            health = timed(client.get, "/api/v1/health")
            assert health.status_code == 503
            assert health.json()["status"] == "down"
            assert health.json()["checks"]["redis"]["ok"] is False
            assert health.json()["checks"]["database"]["ok"] is True
            for method, path, body in [
                ("GET", "/api/v1/orders", None),
                ("GET", "/api/v1/me", None),
                ("GET", "/api/v1/prices/BTCUSD", None),  # the cached route hands it to Django
                ("POST", "/api/v1/orders", ORDER),
                ("POST", "/api/v1/auth/login", {"email": user.email, "password": "whatever-it-is"}),
            ]:
                assert_unavailable(timed(client.request, method, path, json=body), "redis_unavailable")
            assert timed.worst < OUTAGE_ANSWER_SECONDS, timed.seconds

            restarted = time.monotonic()
            private_redis.up()
            until(lambda: client.get("/api/v1/orders").status_code == 200, "the API serving again")
            api_back = time.monotonic() - restarted
            after = client.post("/api/v1/orders", json=ORDER)
            assert after.status_code == 201, after.text
            price = client.get("/api/v1/prices/BTCUSD")
            assert price.status_code == 200, price.text
            # The worker reconnects to the broker by itself and delivers the new order's events;
            # a delivery whose task the outage lost is taken up by the due sweep.
            logs = (worker.process, server.process)

            swept_at = [0.0]

            def swept_and_delivered() -> bool:
                if time.monotonic() - swept_at[0] >= 1.0:  # beat's job, once a second here
                    broker.send_task("webhooks.tasks.webhook_deliveries_due", queue=worker.queue)
                    swept_at[0] = time.monotonic()
                return every_event_delivered(receiver, user, after)

            until(swept_and_delivered, "every event delivered", *logs)
            delivered = time.monotonic() - restarted
            until(lambda: client.get("/api/v1/health").json()["status"] == "ok", "health ok", *logs)
            healthy = time.monotonic() - restarted

            listed = {order["id"] for order in client.get("/api/v1/orders").json()["results"]}
    finally:
        worker.process.stop()
        server.process.stop()
        broker.close()
        app_settings_cache.clear()

    assert listed == {before.json()["id"], after.json()["id"]}
    assert Order.objects.filter(user=user).count() == 2
    # Every event of the user was dispatched, the outage's gap included (none was written then:
    # every write was refused with 503, so nothing a client was told succeeded is missing).
    assert not Event.objects.filter(user=user, dispatched_at__isnull=True).exists()
    seqs = list(Event.objects.filter(user=user).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    print(
        f"\nFAULT redis: worst answer during the outage {timed.worst:.2f} s"
        f" (health {timed.seconds[0]:.2f} s, the others {max(timed.seconds[1:]):.2f} s at most);"
        f" after Redis was back: API serving {api_back:.2f} s, every event delivered by webhook"
        f" {delivered:.2f} s, health ok (worker included) {healthy:.2f} s"
    )


@pytest.fixture
def database_proxy(db: Any) -> Iterator[TcpProxy]:
    if connection.vendor != "postgresql":
        pytest.skip("the database restart is simulated in front of PostgreSQL only")
    settings = connection.settings_dict
    proxy = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))).start()
    yield proxy
    proxy.stop()


def through(proxy: TcpProxy, database_url: str) -> str:
    """The URL with its host and port replaced by the proxy's."""
    scheme, rest = database_url.split("://", 1)
    credentials, _, location = rest.rpartition("@")
    name = location.split("/", 1)[1]
    return f"{scheme}://{credentials}{'@' if credentials else ''}127.0.0.1:{proxy.port}/{name}"


def test_postgresql_restarted_answers_503_fast_then_the_same_process_serves_again(
    e2e_env: dict[str, str], e2e_log_dir: Path, market: None, staff: Any, database_proxy: TcpProxy
) -> None:
    user = trader(staff)
    headers = {"Authorization": f"Bearer {token(user)}"}
    env = {
        **e2e_env,
        "DATABASE_URL": through(database_proxy, e2e_env["DATABASE_URL"]),
        "DB_POOL_TIMEOUT": DB_POOL_TIMEOUT,
        "THROTTLE_USER": "100000/min",
    }
    server: DaphneServer = start_daphne(env, e2e_log_dir)
    try:
        with httpx.Client(base_url=server.base_url, timeout=WAIT_SECONDS, headers=headers) as client:
            before = client.post("/api/v1/orders", json=ORDER)
            assert before.status_code == 201, before.text
            for _ in range(3):  # the pool holds open connections, which the cut drops
                assert client.get("/api/v1/orders").status_code == 200

            database_proxy.cut()
            cut_at = time.monotonic()
            timed = Timed()
            assert_unavailable(timed(client.get, "/api/v1/orders"), "database_unavailable")
            assert_unavailable(timed(client.post, "/api/v1/orders", json=ORDER), "database_unavailable")
            health = timed(client.get, "/api/v1/health")
            assert health.status_code == 503
            assert health.json()["checks"]["database"]["ok"] is False
            assert health.json()["checks"]["redis"]["ok"] is True
            assert timed.worst < float(DB_POOL_TIMEOUT) + OUTAGE_ANSWER_SECONDS, timed.seconds

            database_proxy.restore()
            cut_for = time.monotonic() - cut_at
            back = until(lambda: client.get("/api/v1/orders").status_code == 200, "the API serving again")
            answers = [client.get("/api/v1/orders").status_code for _ in range(10)]
            healthy = until(lambda: client.get("/api/v1/health").json()["checks"]["database"]["ok"], "health")
            listed = [order["id"] for order in client.get("/api/v1/orders").json()["results"]]
    finally:
        server.process.stop()
    output = server.process.output()

    assert back < RECOVERY_SECONDS, back
    assert answers == [200] * 10  # no stale connection left in the pool after the first success
    assert listed == [before.json()["id"]]  # kept; the order refused with 503 made nothing
    assert "Internal Server Error" not in output
    print(
        f"\nFAULT postgresql: worst answer during the cut {timed.worst:.2f} s"
        f" (DB_POOL_TIMEOUT {DB_POOL_TIMEOUT} s); cut for {cut_for:.2f} s; API back {back:.2f} s"
        f" after, health {healthy:.2f} s"
    )
