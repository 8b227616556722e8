from __future__ import annotations

import json

import pytest
from django.conf import settings

from marqetfi.celery import app
from marqetfi.core.logging import request_id_var


@pytest.fixture
def queue(redis_conn):
    name = settings.CELERY_TASK_DEFAULT_QUEUE + "-publish-probe"
    redis_conn.delete(name)
    yield name
    redis_conn.delete(name)


def test_a_task_sent_during_a_request_carries_its_request_id_to_the_broker(redis_conn, queue):
    request_id_var.set("req-from-api")
    try:
        app.send_task("marqetfi.core.tasks.events_redispatch", queue=queue)
    finally:
        request_id_var.set(None)
    [raw] = redis_conn.lrange(queue, 0, -1)
    message = json.loads(raw)
    assert message["headers"]["request_id"] == "req-from-api"
    assert message["headers"]["task"] == "marqetfi.core.tasks.events_redispatch"


def test_a_task_sent_outside_a_request_has_no_request_id_header(redis_conn, queue):
    app.send_task("marqetfi.core.tasks.events_redispatch", queue=queue)
    [raw] = redis_conn.lrange(queue, 0, -1)
    assert "request_id" not in json.loads(raw)["headers"]
