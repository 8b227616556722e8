"""The deployed shape, end to end: daphne serving HTTP and WebSocket, a Celery worker on
the broker, both on the test database and Redis, observed the way a client would."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from marqetfi.core.models import Event
from pricing.models import TradingPair
from pricing.services.prices import price_tick_ingest
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import CeleryWorker, DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 15.0


def receive_json(ws: Connection) -> dict[str, Any]:
    message = ws.recv(timeout=5)
    assert isinstance(message, str), f"expected a text frame, got {message!r}"
    return json.loads(message)


class AssetCollector(HTMLParser):
    """The URLs of the scripts, stylesheets and icons a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.urls.append(values["src"] or "")
        elif (
            tag == "link"
            and values.get("href")
            and {"stylesheet", "icon"} & set((values.get("rel") or "").split())
        ):
            self.urls.append(values["href"] or "")


# --- daphne: HTTP -----------------------------------------------------------------------


def test_health_over_daphne_is_200_with_database_redis_and_broker_ok(daphne_server: DaphneServer) -> None:
    with daphne_server.client() as client:
        response = client.get("/api/v1/health", headers={"X-Request-ID": "e2e-health.1"})

    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "e2e-health.1"
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] in ("ok", "degraded")  # "degraded" if no worker is running yet
    for name in ("database", "redis", "broker"):
        check = body["checks"][name]
        assert check["ok"] is True, check
        assert check["critical"] is True
    assert body["checks"]["database"]["detail"] == connection.vendor
    assert body["checks"]["worker"]["critical"] is False


def test_daphne_makes_up_a_request_id_for_every_response_when_none_is_sent(
    daphne_server: DaphneServer,
) -> None:
    with daphne_server.client() as client:
        first = client.get("/api/v1/events").headers["X-Request-ID"]  # 401
        second = client.get("/no-such-page").headers["X-Request-ID"]  # 404

    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_daphne_serves_rows_the_test_committed(daphne_server: DaphneServer) -> None:
    """The server reads the session's test database: a token and an event made here work there."""
    user: Any = UserFactory()
    event = Event.objects.create(
        user=user, seq=1, type="e2e.check", data={"n": 1}, dispatched_at=timezone.now()
    )
    token = RefreshToken.for_user(user).access_token

    with daphne_server.client(headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get("/api/v1/events")

    assert response.status_code == 200, response.text
    assert [(e["id"], e["seq"], e["data"]) for e in response.json()["results"]] == [
        (event.public_id, 1, {"n": 1})
    ]


def test_daphne_answers_a_cached_price_in_front_of_django(daphne_server: DaphneServer) -> None:
    """The deployed ASGI app carries the cached-price route: the read never reaches Django."""
    TradingPair.objects.create(
        symbol="E2EUSD",
        category="crypto",
        base="E2E",
        quote="USD",
        display_name="E2E/USD",
        trading_hours="24/7",
    )
    price_tick_ingest(
        symbol="E2EUSD", bid=Decimal("10.5"), ask=Decimal("10.7"), provider="paper", ts=timezone.now()
    )

    with daphne_server.client() as client:
        response = client.get("/api/v1/prices/E2EUSD", headers={"X-Request-ID": "e2e-price"})
        through_django = client.get("/api/v1/prices/E2EUSD", params={"max_age_ms": "600000"})
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}"}).text

    assert response.status_code == through_django.status_code == 200, response.text
    assert response.json()["mid"] == through_django.json()["mid"] == "10.6"
    assert response.headers["X-Request-ID"] == "e2e-price"
    answered = re.search(r"^marqetfi_price_fast_path_answers_total (\S+)$", metrics, re.MULTILINE)
    assert answered is not None and float(answered.group(1)) == 1
    by_django = re.search(
        r'^django_http_requests_total_by_view_transport_method_total\{[^}]*view="v1:price"[^}]*\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert by_django is not None and float(by_django.group(1)) == 1


def test_api_docs_load_every_asset_from_daphne_itself(daphne_server: DaphneServer) -> None:
    page_url = f"{daphne_server.base_url}/api/docs/"
    with daphne_server.client() as client:
        page = client.get(page_url)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        collector = AssetCollector()
        collector.feed(page.text)
        assets = [urljoin(page_url, url) for url in collector.urls]

        names = {urlsplit(url).path.rsplit("/", 1)[-1] for url in assets}
        assert {"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"} <= names
        for url in assets:
            assert urlsplit(url).netloc == f"127.0.0.1:{daphne_server.port}", f"{url} is not served by us"
            asset = client.get(url)
            assert asset.status_code == 200, f"{url}: {asset.status_code}"
            assert asset.content, f"{url} is empty"
            if url.endswith(".js"):
                assert "javascript" in asset.headers["content-type"], url
            elif url.endswith(".css"):
                assert asset.headers["content-type"].startswith("text/css"), url


# --- daphne: WebSocket ------------------------------------------------------------------


def test_websocket_greets_with_hello_then_answers_ping_with_pong(daphne_server: DaphneServer) -> None:
    with connect(daphne_server.ws_url, open_timeout=5) as ws:
        hello = receive_json(ws)
        assert hello["type"] == "hello"
        assert re.fullmatch(r"[0-9a-f]{32}", hello["session_id"])
        assert hello["heartbeat_ms"] > 0

        ws.send(json.dumps({"op": "ping"}))
        pong = receive_json(ws)

    assert pong["type"] == "pong"
    assert pong["ts"].endswith("Z")


def test_websocket_answers_bad_messages_with_errors_and_stays_open(daphne_server: DaphneServer) -> None:
    with connect(daphne_server.ws_url, open_timeout=5) as ws:
        assert receive_json(ws)["type"] == "hello"

        ws.send("{not json")
        not_json = receive_json(ws)
        ws.send(json.dumps({"op": "dance"}))
        unknown = receive_json(ws)
        ws.send(b"\x00\x01")
        binary = receive_json(ws)
        ws.send(json.dumps({"op": "ping"}))
        still_open = receive_json(ws)

    assert (not_json["type"], not_json["code"]) == ("error", "invalid_message")
    assert (unknown["type"], unknown["code"]) == ("error", "unknown_op")
    assert (binary["type"], binary["code"]) == ("error", "invalid_message")
    assert still_open["type"] == "pong"


def test_websocket_from_a_foreign_browser_origin_is_refused(daphne_server: DaphneServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(daphne_server.ws_url, origin="https://evil.example", open_timeout=5)  # type: ignore[arg-type]

    assert refused.value.response.status_code == 403


# --- Celery worker ----------------------------------------------------------------------


def test_health_reports_the_running_worker_and_overall_ok(
    daphne_server: DaphneServer, celery_worker: CeleryWorker
) -> None:
    with daphne_server.client() as client:
        response = client.get("/api/v1/health")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"]["worker"]["ok"] is True, body["checks"]["worker"]
    assert body["status"] == "ok", body


def test_worker_redispatches_a_pending_event_sent_over_the_broker(celery_worker: CeleryWorker) -> None:
    from marqetfi.celery import app

    event = Event.objects.create(
        user=UserFactory(),
        seq=1,
        type="e2e.pending",
        data={"why": "never dispatched"},
        created_at=timezone.now() - timedelta(minutes=5),
        dispatched_at=None,
    )
    sent_at = timezone.now()

    app.send_task("marqetfi.core.tasks.events_redispatch", queue=celery_worker.queue)

    deadline = time.monotonic() + WAIT_SECONDS
    event.refresh_from_db()
    while event.dispatched_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
        event.refresh_from_db()
    if event.dispatched_at is None:
        celery_worker.process.fail(f"event not dispatched within {WAIT_SECONDS} s")

    assert event.dispatched_at >= sent_at
    assert event.dispatch_attempts == 1
    assert event.last_dispatch_error == ""
    # The sweep's own log line, written by the worker process after its transaction committed.
    deadline = time.monotonic() + 5
    while "Redispatched 1 of 1 pending events" not in celery_worker.process.output():
        if time.monotonic() > deadline:
            celery_worker.process.fail("the worker did not log the redispatch")
        time.sleep(0.1)


# --- stopping ---------------------------------------------------------------------------


def test_daphne_exits_promptly_on_sigint_even_with_a_socket_open(own_daphne: DaphneServer) -> None:
    process = own_daphne.process
    with connect(own_daphne.ws_url, open_timeout=5, close_timeout=1) as ws:
        assert receive_json(ws)["type"] == "hello"
        started = time.monotonic()
        process.popen.send_signal(signal.SIGINT)
        try:
            returncode = process.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.fail("daphne still running 5 s after SIGINT")
        elapsed = time.monotonic() - started

        with pytest.raises(ConnectionClosed):  # the client sees its socket closed
            ws.recv(timeout=2)

    assert returncode == 0, process.output()
    assert elapsed < 5
    with pytest.raises(ProcessLookupError):  # nothing left in the process group daphne led
        os.killpg(process.pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", own_daphne.port), timeout=1).close()
