"""The outbox: every state change a user cares about becomes one ``Event`` row.

``publish`` writes the row inside the caller's transaction with the next number of the
user's gapless sequence (on PostgreSQL the number and the rows in one statement). After
commit the events of the transaction are handed, as one batch, to the dispatchers listed in
``settings.EVENT_DISPATCHERS`` (WebSocket fan-out, webhook deliveries): each dispatcher
takes them all at once, one update marks them dispatched. The batch is built from the
events kept in memory as the database gave them back (no query), without those of a
savepoint that rolled back. An event that was not marked dispatched, because the process
died or a dispatcher failed, is handed over again by ``events_redispatch``, run by beat.
Dispatchers must therefore be idempotent.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from functools import cache, lru_cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from marqetfi.core.formats import timestamp_text
from marqetfi.core.models import Event, EventStream
from marqetfi.core.rows import column_value

logger = logging.getLogger(__name__)

# A dispatcher takes the events of one hand-over (ordered by user and seq) and raises if it
# could not take them; a failure counts against every event of the batch.
EventDispatcher = Callable[[Sequence[Event]], None]


class _Flush:
    """The on-commit callback of one ``publish_many``; the first of a transaction to run
    hands over the whole transaction's events.

    Django drops the callbacks registered inside a savepoint when the savepoint rolls back
    (and all of them when the transaction does), and holds the others until they have run.
    ``_pending`` refers to each flush only weakly, so a flush that is gone marks its events
    as rolled back: nothing else keeps a reference to it (``publish_many`` keeps none).
    """

    __slots__ = ("__weakref__",)

    def __call__(self) -> None:
        _pending_dispatch()


class _Pending(threading.local):
    """The events published on this thread that have not been handed over yet, each batch
    with its flush, and as the database holds them (what dispatchers get)."""

    def __init__(self) -> None:
        self.batches: list[tuple[weakref.ref[_Flush], list[Event]]] = []


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

    Every publish registers a flush, so an event is never left behind by a savepoint that
    rolled back; the first flush after commit takes every pending event and the others find
    nothing to do. Events whose flush Django dropped (their savepoint or transaction rolled
    back: their rows do not exist) are skipped.
    """
    (event,) = publish_many(user_id=user_id, events=[(type, data)])
    return event


def publish_many(*, user_id: Any, events: Sequence[tuple[str, dict[str, Any]]]) -> list[Event]:
    """``publish`` of several events of one user at once, in this order, numbered by one
    block of the user's counter: one statement on PostgreSQL (``_insert_numbered``), two
    elsewhere (the numbers, then the rows), whatever their count."""
    if not events:
        return []
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            rows = [Event(user_id=user_id, type=type, data=data) for type, data in events]
            stored = _insert_numbered(user_id, rows)
        else:
            seqs = _next_seqs(user_id, len(events))
            rows = Event.objects.bulk_create(
                [
                    Event(user_id=user_id, seq=seq, type=type, data=data)
                    for seq, (type, data) in zip(seqs, events, strict=True)
                ]
            )
            stored = [_as_stored(event) for event in rows]
        flush = _Flush()
        transaction.on_commit(flush)
        _pending.batches = [batch for batch in _pending.batches if batch[0]() is not None]
        _pending.batches.append((weakref.ref(flush), stored))
        del flush  # Django's list of callbacks must hold the only reference
    return rows


_EVENT_COLUMNS = [field for field in Event._meta.concrete_fields if field.name != "seq"]


@lru_cache(maxsize=32)
def _insert_numbered_sql(count: int) -> str:
    """``_insert_numbered``'s statement for ``count`` rows, built once per count."""
    quote = connection.ops.quote_name
    stream_table = quote(EventStream._meta.db_table)
    stream_user = quote(EventStream._meta.get_field("user").column)
    casts = [f"%s::{field.db_type(connection)}" for field in _EVENT_COLUMNS]
    value_rows = ", ".join(f"(%s::integer, {', '.join(casts)})" for _ in range(count))
    names = [f"v{index}" for index in range(len(_EVENT_COLUMNS))]
    columns = ", ".join(quote(field.column) for field in _EVENT_COLUMNS)
    seq_column = quote(Event._meta.get_field("seq").column)
    returning = list(Event._meta.concrete_fields)
    return (
        f"WITH block AS (INSERT INTO {stream_table} ({stream_user}, last_seq) VALUES (%s, %s) "  # noqa: S608
        f"ON CONFLICT ({stream_user}) DO UPDATE SET last_seq = {stream_table}.last_seq + %s "
        "RETURNING last_seq) "
        f"INSERT INTO {quote(Event._meta.db_table)} ({columns}, {seq_column}) "
        f"SELECT {', '.join(f'rows.{name}' for name in names)}, "
        f"block.last_seq - {count} + rows.n "
        f"FROM block, (VALUES {value_rows}) AS rows (n, {', '.join(names)}) ORDER BY rows.n "
        f"RETURNING {', '.join(quote(field.column) for field in returning)}"
    )


def _insert_numbered(user_id: Any, rows: list[Event]) -> list[Event]:
    """Take the next ``len(rows)`` numbers of the user's counter and insert ``rows`` with them,
    in one statement (PostgreSQL): a data-modifying CTE upserts the counter (its row lock held
    to the end of the transaction, as ``_next_seqs``) and the insert numbers the rows from
    the block it returned. Sets ``seq`` on ``rows`` and marks them saved, as ``bulk_create``
    does; returns the rows as the database holds them (``RETURNING``), for the dispatchers.
    """
    user_value = EventStream._meta.get_field("user").get_db_prep_value(user_id, connection)
    params: list[Any] = [user_value, len(rows), len(rows)]
    for index, event in enumerate(rows, start=1):
        params.append(index)
        params.extend(
            field.get_db_prep_save(field.pre_save(event, True), connection) for field in _EVENT_COLUMNS
        )
    returning = list(Event._meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(_insert_numbered_sql(len(rows)), params)
        returned = cursor.fetchall()
    stored = {}
    for values in returned:
        event = Event.from_db(
            connection.alias,
            [field.attname for field in returning],
            [_from_db(field, value) for field, value in zip(returning, values, strict=True)],
        )
        stored[event.pk] = event
    result = []
    for event in rows:
        event.seq = stored[event.pk].seq
        event._state.adding = False
        event._state.db = connection.alias
        result.append(stored[event.pk])
    return result


def _from_db(field: Any, value: Any) -> Any:
    """A column's value as a query through the ORM gives it (the field's converter)."""
    converter = getattr(field, "from_db_value", None)
    return value if converter is None or value is None else converter(value, None, connection)


def _as_stored(event: Event) -> Event:
    """A copy of a saved event with its values as they read back from the database: ``data``
    through its JSON encoding (a ``Decimal`` becomes its text), the user as its key type."""
    data_field = Event._meta.get_field("data")
    return Event.from_db(
        connection.alias,
        [field.attname for field in Event._meta.concrete_fields],
        [
            _from_db(data_field, data_field.get_db_prep_save(event.data, connection))
            if field is data_field
            else field.to_python(field.value_from_object(event))
            for field in Event._meta.concrete_fields
        ],
    )


def _pending_dispatch() -> None:
    batches, _pending.batches = _pending.batches, []
    events = [event for flush, stored in batches if flush() is not None for event in stored]
    if events:
        events.sort(key=lambda event: (event.user_id, event.seq))
        _dispatch_batch(events)


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
    _mark_dispatched(ids)
    logger.debug("%s event(s) dispatched", len(events))
    return len(events)


@lru_cache(maxsize=64)
def _mark_dispatched_sql(count: int) -> str:
    table, ids = connection.ops.quote_name(Event._meta.db_table), ", ".join(["%s"] * count)
    return (
        f'UPDATE {table} SET "dispatched_at" = %s, "dispatch_attempts" = "dispatch_attempts" + 1, '  # noqa: S608
        f'"last_dispatch_error" = \'\' WHERE "dispatched_at" IS NULL AND "id" IN ({ids})'
    )


def _mark_dispatched(ids: Sequence[UUID]) -> None:
    """Mark the events dispatched (those another hand-over marked first are left alone): one
    UPDATE, its SQL built once per batch size rather than compiled by the ORM per batch."""
    params = [column_value(Event, "dispatched_at", timezone.now())]
    params += [column_value(Event, "id", event_id) for event_id in ids]
    with connection.cursor() as cursor:
        cursor.execute(_mark_dispatched_sql(len(ids)), params)


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
