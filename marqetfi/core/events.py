"""The outbox: every state change a user cares about becomes one ``Event`` row.

``publish`` writes the row inside the caller's transaction with the next number of the
user's gapless sequence. After commit the event is handed to the dispatchers listed in
``settings.EVENT_DISPATCHERS`` (WebSocket fan-out, webhook deliveries); an event that
was not marked dispatched, because the process died or a dispatcher failed, is handed
over again by ``events_redispatch``, run by beat. Dispatchers must therefore be idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from marqetfi.core.formats import timestamp_text
from marqetfi.core.models import Event, EventStream

logger = logging.getLogger(__name__)

EventDispatcher = Callable[[Event], None]


def _next_seq(user_id: Any) -> int:
    """Increment the user's counter and return the new value, in one statement.

    The upsert holds the counter row's lock until the surrounding transaction ends, so
    concurrent publishers for one user queue up and a rollback gives the number back.
    """
    table = connection.ops.quote_name(EventStream._meta.db_table)
    user_column = EventStream._meta.get_field("user").column
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({user_column}, last_seq) VALUES (%s, 1) "  # noqa: S608
            f"ON CONFLICT ({user_column}) DO UPDATE SET last_seq = {table}.last_seq + 1 "
            "RETURNING last_seq",
            [EventStream._meta.get_field("user").get_db_prep_value(user_id, connection)],
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def publish(*, user_id: Any, type: str, data: dict[str, Any]) -> Event:
    """Record an event for a user in the current transaction; dispatch it after commit."""
    with transaction.atomic():
        event = Event.objects.create(user_id=user_id, seq=_next_seq(user_id), type=type, data=data)
        transaction.on_commit(lambda: events_dispatch(event_ids=[event.pk]))
    return event


@cache
def _dispatchers(paths: tuple[str, ...]) -> list[EventDispatcher]:
    return [import_string(path) for path in paths]


def dispatchers() -> list[EventDispatcher]:
    return _dispatchers(tuple(settings.EVENT_DISPATCHERS))


def _dispatch_one(event: Event) -> bool:
    errors = []
    for dispatcher in dispatchers():
        try:
            dispatcher(event)
        except Exception as exc:
            logger.exception("Dispatcher %s failed for event %s", dispatcher.__name__, event.pk)
            errors.append(f"{dispatcher.__name__}: {exc!r}")
    if errors:
        Event.objects.filter(pk=event.pk).update(
            dispatch_attempts=F("dispatch_attempts") + 1, last_dispatch_error="\n".join(errors)[:2000]
        )
        return False
    Event.objects.filter(pk=event.pk, dispatched_at__isnull=True).update(
        dispatched_at=timezone.now(), dispatch_attempts=F("dispatch_attempts") + 1, last_dispatch_error=""
    )
    logger.debug("Event %s #%s (%s) dispatched", event.pk, event.seq, event.type)
    return True


def events_dispatch(*, event_ids: Iterable[UUID]) -> int:
    """Hand the given events to every dispatcher; returns how many succeeded everywhere."""
    events = Event.objects.filter(pk__in=list(event_ids), dispatched_at__isnull=True).order_by(
        "user_id", "seq"
    )
    return sum(_dispatch_one(event) for event in events)


def events_redispatch(*, older_than: timedelta | None = None, batch_size: int = 500) -> int:
    """Dispatch again every event still not marked dispatched after ``older_than``.

    Rows are claimed with ``SKIP LOCKED`` (on PostgreSQL) so two sweepers never hand the
    same event over twice at once.
    """
    if older_than is None:
        older_than = timedelta(seconds=settings.EVENT_REDISPATCH_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    with transaction.atomic():
        events = list(
            Event.objects.select_for_update(skip_locked=True)
            .filter(dispatched_at__isnull=True, created_at__lte=cutoff)
            .order_by("created_at")[:batch_size]
        )
        dispatched = sum(_dispatch_one(event) for event in events)
    if events:
        logger.info("Redispatched %s of %s pending events", dispatched, len(events))
    return dispatched


def event_payload(event: Event) -> dict[str, Any]:
    """The wire form shared by /events, the WebSocket and webhook bodies."""
    return {
        "id": event.public_id,
        "type": event.type,
        "seq": event.seq,
        "created_at": timestamp_text(event.created_at),
        "data": event.data,
    }
