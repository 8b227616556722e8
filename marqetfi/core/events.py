"""The outbox: every state change a user cares about becomes one ``Event`` row.

``publish`` writes the row inside the caller's transaction with the next number of the
user's gapless sequence. After commit the events of the transaction are handed, as one
batch, to the dispatchers listed in ``settings.EVENT_DISPATCHERS`` (WebSocket fan-out,
webhook deliveries): one query loads them, each dispatcher takes them all at once, one
update marks them dispatched. An event that was not marked dispatched, because the process
died or a dispatcher failed, is handed over again by ``events_redispatch``, run by beat.
Dispatchers must therefore be idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
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

# A dispatcher takes the events of one hand-over (ordered by user and seq) and raises if it
# could not take them; a failure counts against every event of the batch.
EventDispatcher = Callable[[Sequence[Event]], None]


class _Pending(threading.local):
    """The events published on this thread whose transaction has not been dispatched yet."""

    def __init__(self) -> None:
        self.event_ids: list[UUID] = []


_pending = _Pending()


def _next_seqs(user_id: Any, count: int = 1) -> range:
    """Take the next ``count`` numbers of the user's counter, in one statement.

    The upsert holds the counter row's lock until the surrounding transaction ends, so
    concurrent publishers for one user queue up and a rollback gives the numbers back.
    """
    table = connection.ops.quote_name(EventStream._meta.db_table)
    user_column = EventStream._meta.get_field("user").column
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({user_column}, last_seq) VALUES (%s, %s) "  # noqa: S608
            f"ON CONFLICT ({user_column}) DO UPDATE SET last_seq = {table}.last_seq + %s "
            "RETURNING last_seq",
            [EventStream._meta.get_field("user").get_db_prep_value(user_id, connection), count, count],
        )
        row = cursor.fetchone()
    assert row is not None
    last = int(row[0])
    return range(last - count + 1, last + 1)


def publish(*, user_id: Any, type: str, data: dict[str, Any]) -> Event:
    """Record an event for a user in the current transaction; dispatch it after commit, in one
    batch with the other events of the transaction.

    Every publish registers the flush, so an event is never left behind by a savepoint that
    rolled back; the first flush after commit takes every pending id and the others find
    nothing to do. Ids of events that were rolled back are skipped by the flush's query
    (their rows do not exist).
    """
    (event,) = publish_many(user_id=user_id, events=[(type, data)])
    return event


def publish_many(*, user_id: Any, events: Sequence[tuple[str, dict[str, Any]]]) -> list[Event]:
    """``publish`` of several events of one user at once, in this order: their numbers taken
    in one statement, their rows written in one (two statements whatever their count)."""
    if not events:
        return []
    with transaction.atomic(savepoint=False):
        seqs = _next_seqs(user_id, len(events))
        rows = Event.objects.bulk_create(
            [
                Event(user_id=user_id, seq=seq, type=type, data=data)
                for seq, (type, data) in zip(seqs, events, strict=True)
            ]
        )
        _pending.event_ids.extend(event.pk for event in rows)
        transaction.on_commit(_pending_dispatch)
    return rows


def _pending_dispatch() -> None:
    event_ids, _pending.event_ids = _pending.event_ids, []
    if event_ids:
        events_dispatch(event_ids=event_ids)


@cache
def _dispatchers(paths: tuple[str, ...]) -> list[EventDispatcher]:
    return [import_string(path) for path in paths]


def dispatchers() -> list[EventDispatcher]:
    return _dispatchers(tuple(settings.EVENT_DISPATCHERS))


def _dispatch_batch(events: Sequence[Event]) -> int:
    """Hand ``events`` to every dispatcher at once and mark them dispatched (one update).

    A batch a dispatcher refused is handed over again one event at a time, so that one event
    it cannot take does not hold the others back; an event that fails alone counts a failed
    attempt. Returns how many succeeded everywhere."""
    if not events:
        return 0
    errors = []
    for dispatcher in dispatchers():
        try:
            dispatcher(events)
        except Exception as exc:
            logger.exception("Dispatcher %s failed for %s event(s)", dispatcher.__name__, len(events))
            errors.append(f"{dispatcher.__name__}: {exc!r}")
    ids = [event.pk for event in events]
    if errors and len(events) > 1:
        return sum(_dispatch_batch([event]) for event in events)
    if errors:
        Event.objects.filter(pk__in=ids).update(
            dispatch_attempts=F("dispatch_attempts") + 1, last_dispatch_error="\n".join(errors)[:2000]
        )
        return 0
    Event.objects.filter(pk__in=ids, dispatched_at__isnull=True).update(
        dispatched_at=timezone.now(), dispatch_attempts=F("dispatch_attempts") + 1, last_dispatch_error=""
    )
    logger.debug("%s event(s) dispatched", len(events))
    return len(events)


def events_dispatch(*, event_ids: Iterable[UUID]) -> int:
    """Hand the given events to every dispatcher; returns how many succeeded everywhere."""
    events = list(
        Event.objects.filter(pk__in=list(event_ids), dispatched_at__isnull=True).order_by("user_id", "seq")
    )
    return _dispatch_batch(events)


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
        dispatched = _dispatch_batch(events)
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
