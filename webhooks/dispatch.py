"""The outbox's webhook dispatcher: every event becomes a delivery per endpoint that takes it."""

from __future__ import annotations

from collections.abc import Sequence

from marqetfi.core.models import Event
from webhooks.services.delivery import deliveries_create_for_events


def events_dispatch_to_webhooks(events: Sequence[Event]) -> None:
    """Idempotent: a delivery exists once per (endpoint, event), so a second hand-over adds nothing.

    ``webhook.test`` goes only where it was asked for (``endpoint_test_send``)."""
    deliveries_create_for_events(events)
