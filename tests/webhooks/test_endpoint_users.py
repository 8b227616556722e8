"""Users without an enabled endpoint are remembered by the process, so the hand-over of their
events costs no query, and an endpoint that appears takes the very next event."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_redis import get_redis_connection

from marqetfi.core.events import publish
from marqetfi.core.models import Event
from tests.accounts.factories import UserFactory
from tests.webhooks.factories import WebhookEndpointFactory
from webhooks.endpoint_users import webhook_endpoints_generation
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.endpoints import endpoint_update

pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINTS_TABLE = '"webhooks_webhookendpoint"'


@pytest.fixture(autouse=True)
def _no_attempt_tasks(monkeypatch: Any) -> list[Any]:
    """The deliveries are what is checked here; their attempts are not sent to a worker."""
    scheduled: list[Any] = []
    monkeypatch.setattr(
        "webhooks.services.delivery._schedule_attempt",
        lambda delivery_id, countdown=0.0: scheduled.append(delivery_id),
    )
    return scheduled


def committed_event(user: Any, type: str = "order.filled") -> tuple[Event, list[str]]:
    """An event published and handed over in its own transaction, and the statements spent."""
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        event = publish(user_id=user.pk, type=type, data={"order_id": "o-1"})
    return event, [query["sql"] for query in queries.captured_queries]


def endpoint_of(**fields: Any) -> WebhookEndpoint:
    """An endpoint saved through the ORM (its ``post_save`` announces it)."""
    endpoint = WebhookEndpointFactory(**fields)
    assert isinstance(endpoint, WebhookEndpoint)
    return endpoint


def endpoints_looked_up(statements: list[str]) -> bool:
    return any(ENDPOINTS_TABLE in sql for sql in statements)


def test_a_user_found_without_endpoints_is_not_looked_up_again() -> None:
    user = UserFactory()
    first, statements = committed_event(user)
    assert endpoints_looked_up(statements)
    second, statements = committed_event(user)
    assert not endpoints_looked_up(statements)
    if connection.vendor == "postgresql":
        # BEGIN, the numbered insert, COMMIT, the update marking it dispatched.
        assert len(statements) == 4, "\n".join(statements)
    assert not WebhookDelivery.objects.exists()
    assert Event.objects.filter(pk__in=[first.pk, second.pk], dispatched_at__isnull=False).count() == 2


def test_an_endpoint_created_after_the_user_was_remembered_takes_the_very_next_event() -> None:
    user = UserFactory()
    committed_event(user)  # remembered without endpoints
    endpoint = endpoint_of(user=user)
    event, statements = committed_event(user)
    assert endpoints_looked_up(statements)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.endpoint_id == endpoint.pk
    assert delivery.webhook_id == event.public_id


def test_an_endpoint_another_process_created_takes_the_very_next_event() -> None:
    """Another process's endpoint reaches this one through the Redis generation alone: the row
    is written here without the model's signal, and the generation moved as that process's
    commit moves it."""
    user = UserFactory()
    committed_event(user)  # remembered without endpoints
    (endpoint,) = WebhookEndpoint.objects.bulk_create([WebhookEndpointFactory.build(user=user)])
    get_redis_connection("default").incr(webhook_endpoints_generation.key)
    event, _ = committed_event(user)
    assert WebhookDelivery.objects.get(event=event).endpoint_id == endpoint.pk


def test_an_endpoint_enabled_again_takes_the_very_next_event() -> None:
    user = UserFactory()
    endpoint = endpoint_of(user=user, enabled=False, disabled_reason="user")
    _, statements = committed_event(user)
    assert endpoints_looked_up(statements)
    _, statements = committed_event(user)
    assert not endpoints_looked_up(statements), "a disabled endpoint takes nothing: remembered"
    endpoint_update(endpoint, enabled=True)
    event, _ = committed_event(user)
    assert WebhookDelivery.objects.get(event=event).endpoint_id == endpoint.pk


def test_a_user_with_an_endpoint_is_looked_up_every_time() -> None:
    user = UserFactory()
    endpoint = endpoint_of(user=user, event_types=["deposit.received"])
    _, statements = committed_event(user, "order.filled")
    assert endpoints_looked_up(statements)
    endpoint.event_types = []
    endpoint.save(update_fields=["event_types", "updated_at"])  # no bump: none is needed
    event, statements = committed_event(user, "order.filled")
    assert endpoints_looked_up(statements)
    assert WebhookDelivery.objects.get(event=event).endpoint_id == endpoint.pk


def test_when_the_generation_cannot_be_read_the_endpoints_are_queried(monkeypatch: Any) -> None:
    user = UserFactory()
    committed_event(user)  # remembered without endpoints
    endpoint = WebhookEndpoint.objects.bulk_create([WebhookEndpointFactory.build(user=user)])[0]

    def unreachable() -> int:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(webhook_endpoints_generation, "current", unreachable)
    event, statements = committed_event(user)
    assert endpoints_looked_up(statements)
    assert WebhookDelivery.objects.get(event=event).endpoint_id == endpoint.pk
