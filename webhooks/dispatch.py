"""The outbox's webhook dispatcher: every event becomes a delivery per endpoint that takes it."""

from __future__ import annotations

from marqetfi.core.models import Event
from webhooks.services.delivery import TEST_EVENT_TYPE, deliveries_create_for_event


def event_dispatch_to_webhooks(event: Event) -> None:
    """Idempotent: a delivery exists once per (endpoint, event), so a second hand-over adds nothing.

    ``webhook.test`` goes only where it was asked for (``endpoint_test_send``)."""
    if event.type == TEST_EVENT_TYPE:
        return
    deliveries_create_for_event(event)
