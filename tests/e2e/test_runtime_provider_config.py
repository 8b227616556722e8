"""A provider configuration change reaches a Celery worker that was already running.

The worker builds its Privy adapter from the active configuration. The test writes a new
version pointing the adapter at another server (with other credentials) through the same
service the admin uses; the worker's next probe goes to the new server, without a restart.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from marqetfi.celery import app
from providers.services.configs import provider_config_create, provider_config_rollback
from tests.e2e.conftest import CeleryWorker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 10.0


@pytest.fixture
def privy_servers() -> Iterator[tuple[HTTPServer, HTTPServer]]:
    servers = (HTTPServer(host="127.0.0.1", port=0), HTTPServer(host="127.0.0.1", port=0))
    for server in servers:
        server.expect_request("/v1/wallets").respond_with_json({"data": [], "next_cursor": None})
        server.start()
    yield servers
    for server in servers:
        server.clear()
        server.stop()


def probes_at(server: HTTPServer) -> list[str]:
    """The app ids (from Basic auth) of the health probes a fake Privy server received."""
    app_ids = []
    for request, _ in server.log:
        if request.path == "/v1/wallets":
            user_pass = base64.b64decode(request.headers["Authorization"].split()[1]).decode()
            app_ids.append(user_pass.split(":", 1)[0])
    return app_ids


def probe_until(worker: CeleryWorker, server: HTTPServer, app_id: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while app_id not in probes_at(server):
        if time.monotonic() > deadline:
            worker.process.fail(f"no probe with app id {app_id} reached {server.url_for('/')}")
        app.send_task("providers.tasks.provider_probe", args=["privy"], queue=worker.queue)
        time.sleep(0.5)


def test_a_running_worker_uses_the_new_provider_config_without_restart(
    celery_worker: CeleryWorker, privy_servers: tuple[HTTPServer, HTTPServer]
) -> None:
    first, second = privy_servers
    provider_config_create(
        name="privy",
        values={"app_id": "app-first", "base_url": first.url_for("/"), "max_attempts": 1},
        secrets={"app_secret": "secret-first"},
        comment="e2e: first server",
    )
    probe_until(celery_worker, first, "app-first")

    provider_config_create(
        name="privy",
        values={"app_id": "app-second", "base_url": second.url_for("/"), "max_attempts": 1},
        secrets={"app_secret": "secret-second"},
        comment="e2e: moved",
    )
    probe_until(celery_worker, second, "app-second")
    assert set(probes_at(first)) == {"app-first"}, "the old configuration is no longer used"

    provider_config_rollback(name="privy", version=1)
    first.clear_log()
    probe_until(celery_worker, first, "app-first")
    assert celery_worker.process.alive(), "the same worker process, never restarted"
