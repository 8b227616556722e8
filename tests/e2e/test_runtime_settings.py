"""Runtime settings reach processes that were already running, without a restart.

The test process changes a setting through the service (a committed transaction that
bumps the generation in Redis); a separately running daphne and Celery worker are then
observed the way a client or an operator would: HTTP answers and the worker's log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from marqetfi.celery import app
from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_reset, app_setting_set
from marqetfi.core.models import Event
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import CeleryWorker, DaphneServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PICKUP_SECONDS = 5.0
MESSAGE = "Down for a database upgrade, back at 14:00 UTC."


@pytest.fixture(autouse=True)
def _restore_this_process() -> Iterator[None]:
    """Publishing a task reloads settings here too: keep the test process as it was."""
    root = logging.getLogger()
    level = root.level
    yield
    app_settings_cache.clear()
    root.setLevel(level)


def poll(probe: Callable[[], Any], done: Callable[[Any], bool], what: str) -> tuple[Any, float]:
    """Call ``probe`` until ``done`` accepts its result; the result and the seconds it took."""
    started = time.monotonic()
    while True:
        result = probe()
        elapsed = time.monotonic() - started
        if done(result):
            return result, elapsed
        if elapsed > PICKUP_SECONDS:
            pytest.fail(f"{what} not seen within {PICKUP_SECONDS} s; last: {result!r}")
        time.sleep(0.05)


# --- daphne -------------------------------------------------------------------------------


def test_a_running_daphne_closes_and_reopens_the_api_with_maintenance_mode(own_daphne: DaphneServer) -> None:
    with own_daphne.client() as client:
        assert client.get("/api/v1/events").status_code == 401  # loaded its settings already

        try:
            app_setting_set(key="maintenance_mode", value={"enabled": True, "message": MESSAGE}, actor=None)
            closed, closed_after = poll(
                lambda: client.get("/api/v1/events"), lambda r: r.status_code == 503, "503 from daphne"
            )
            health = client.get("/api/v1/health")
            admin_login = client.get("/admin/login/")
        finally:
            app_setting_reset(key="maintenance_mode", actor=None)
        reopened, reopened_after = poll(
            lambda: client.get("/api/v1/events"), lambda r: r.status_code != 503, "the API reopening"
        )

    assert closed.headers["Retry-After"] == "60"
    assert closed.json() == {"error": {"code": "maintenance", "message": MESSAGE, "details": {}}}
    assert health.status_code == 200, health.text
    assert admin_login.status_code == 200
    assert reopened.status_code == 401
    assert own_daphne.process.alive()
    print(f"daphne: closed after {closed_after:.2f} s, reopened after {reopened_after:.2f} s")


def test_a_browser_origin_added_at_runtime_is_granted_by_a_running_daphne(
    daphne_server: DaphneServer,
) -> None:
    origin = "https://runtime-partner.example"

    def preflight() -> httpx.Response:
        with daphne_server.client() as client:
            return client.options(
                "/api/v1/health", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
            )

    assert "access-control-allow-origin" not in preflight().headers
    try:
        app_setting_set(key="cors_allowed_origins", value=[origin], actor=None)
        granted, _ = poll(
            preflight, lambda r: "access-control-allow-origin" in r.headers, "the CORS grant from daphne"
        )
    finally:
        app_setting_reset(key="cors_allowed_origins", actor=None)
    poll(preflight, lambda r: "access-control-allow-origin" not in r.headers, "the CORS grant withdrawn")

    assert granted.headers["access-control-allow-origin"] == origin


# --- Celery worker ------------------------------------------------------------------------


def worker_records(worker: CeleryWorker) -> list[dict[str, Any]]:
    return [json.loads(line) for line in worker.process.output().splitlines() if line.startswith("{")]


def redispatch_round(worker: CeleryWorker) -> list[dict[str, Any]]:
    """Run one sweep that dispatches a pending event; the worker's log records of that task.

    Those are the records from its "received" line to its "succeeded" line: with one pool
    process and nothing else queued, all of them come from handling this task.
    """
    Event.objects.create(
        user=UserFactory(),
        seq=1,
        type="e2e.pending",
        data={},
        created_at=timezone.now() - timedelta(minutes=5),
    )
    task_id = app.send_task("marqetfi.core.tasks.events_redispatch", queue=worker.queue).id
    deadline = time.monotonic() + 15
    while True:
        records = worker_records(worker)
        ids = [(r.get("data") or {}).get("id") for r in records]
        if ids.count(task_id) >= 2:  # received and succeeded
            first = ids.index(task_id)
            last = len(ids) - 1 - ids[::-1].index(task_id)
            return records[first : last + 1]
        if time.monotonic() > deadline:
            worker.process.fail(f"task {task_id} not done within 15 s")
        time.sleep(0.05)


def debug_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["level"] == "DEBUG"]


def test_a_running_worker_logs_at_debug_once_the_log_level_changes(celery_worker: CeleryWorker) -> None:
    before = redispatch_round(celery_worker)
    assert not debug_records(before), before

    try:
        app_setting_set(key="log_level", value="DEBUG", actor=None)
        during, debug_after = poll(
            lambda: redispatch_round(celery_worker),
            lambda r: bool(debug_records(r)),
            "DEBUG records from the worker",
        )
    finally:
        app_setting_reset(key="log_level", actor=None)
    _, quiet_after = poll(
        lambda: redispatch_round(celery_worker), lambda r: not debug_records(r), "INFO again"
    )

    task_id = during[0]["data"]["id"]
    applied = [r for r in during if r["message"] == "Log level set to DEBUG by the log_level app setting"]
    # The pool process that ran the task applied the level before running it (its request id is the task's).
    assert task_id in {r["request_id"] for r in applied}, during
    assert any(r["message"] == "Redispatched 1 of 1 pending events" for r in during)
    assert celery_worker.process.alive()
    print(f"worker: DEBUG after {debug_after:.2f} s, back to INFO after {quiet_after:.2f} s")
