"""Webhook deliveries made by a real Celery worker over a real Redis broker.

The test process publishes events (committed), the worker posts them to a loopback
receiver. The crash test SIGKILLs the worker while it holds a delivery's request open,
starts another, runs the due sweep and checks that every event reached the receiver
(deduplicated by ``webhook-id``, as a receiver does).
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from marqetfi.celery import app
from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_set
from marqetfi.core.crypto import encrypt
from marqetfi.core.events import publish
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import CeleryWorker, start_celery_worker
from tests.webhooks.receiver import HANG, running_receiver
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.delivery import deliveries_due_sweep
from webhooks.signing import secret_new

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 20.0


@pytest.fixture(autouse=True)
def _short_retries() -> Iterator[None]:
    app_setting_set(
        key="webhook_retry_policy",
        value={"max_retries": 3, "base_delay_seconds": 1, "max_delay_seconds": 4, "timeout_seconds": 2},
        actor=None,
    )
    yield
    app_settings_cache.clear()


@pytest.fixture
def own_queue_env(e2e_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A queue of this test's own, so that no other worker of the session takes its tasks."""
    queue = f"{e2e_env['CELERY_QUEUE']}-webhooks-{uuid.uuid4().hex[:6]}"
    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield {**e2e_env, "CELERY_QUEUE": queue, "WEBHOOK_ATTEMPT_LEASE_MARGIN_SECONDS": "1"}
    app.conf.task_default_queue = before


def endpoint_for(user: Any, url: str) -> tuple[WebhookEndpoint, str]:
    secret = secret_new()
    return WebhookEndpoint.objects.create(user=user, url=url, secret_encrypted=encrypt(secret)), secret


def wait_for(done: Callable[[], bool], what: str, worker: CeleryWorker | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.05)
    if worker is not None:
        worker.process.fail(f"{what} not seen within {WAIT_SECONDS} s")
    pytest.fail(f"{what} not seen within {WAIT_SECONDS} s")


def test_a_published_event_is_posted_by_the_worker(celery_worker: CeleryWorker) -> None:
    user = UserFactory()
    with running_receiver() as receiver:
        _, secret = endpoint_for(user, receiver.url)
        event = publish(user_id=user.pk, type="order.filled", data={"order_id": "o-1"})
        wait_for(lambda: len(receiver.received) == 1, "the delivery", celery_worker)

    (request,) = receiver.received
    body = Webhook(secret).verify(request.body, request.headers)
    assert (body["id"], body["seq"]) == (event.public_id, event.seq)
    wait_for(
        lambda: WebhookDelivery.objects.filter(event=event, status="succeeded").exists(),
        "the delivery recorded",
    )


def test_no_event_is_lost_when_the_worker_is_killed_mid_delivery(
    own_queue_env: dict[str, str], e2e_log_dir: Path
) -> None:
    user = UserFactory()
    with running_receiver([HANG], hang_seconds=30) as receiver:
        endpoint, _ = endpoint_for(user, receiver.url)
        first_worker = start_celery_worker(own_queue_env, e2e_log_dir)
        try:
            events = [publish(user_id=user.pk, type="order.filled", data={"n": n}) for n in range(3)]
            wait_for(lambda: len(receiver.received) == 1, "the first request", first_worker)
            first_worker.process.stop(signal.SIGKILL)
        finally:
            first_worker.process.stop()
        second_worker = start_celery_worker(own_queue_env, e2e_log_dir)
        try:
            # The killed attempt's lease (timeout 2 s + margin 1 s) runs out; the sweep (beat's
            # task) schedules the delivery again, and the ordered ones behind it follow.
            def swept_and_delivered() -> bool:
                deliveries_due_sweep(grace_seconds=0)
                return len(set(receiver.webhook_ids())) == len(events)

            wait_for(swept_and_delivered, "every event delivered", second_worker)
            wait_for(
                lambda: WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").count() == 3,
                "every delivery recorded as succeeded",
                second_worker,
            )
        finally:
            second_worker.process.stop()

    ids = receiver.webhook_ids()
    assert set(ids) == {event.public_id for event in events}
    first_seen = list(dict.fromkeys(ids))
    assert first_seen == [event.public_id for event in events]  # in event order
    assert ids.count(events[0].public_id) == 2  # the one in flight at the kill, resent once
    assert all(ids.count(event.public_id) == 1 for event in events[1:])
