"""Trailing stops follow the best closing price since they were armed (``best_price``) and sit
``terms.trailing_stop_price`` behind it.

A move bumps its position's ``resource_version`` and is published as ``position.updated``,
throttled per position: at most one event per ``TRAILING_UPDATE_MIN_INTERVAL_MS`` as the
market moves (a Redis ``SET NX PX`` per position). A move inside that interval publishes
nothing itself; its position is noted in a Redis set that the next sweep (every few seconds)
publishes from (``trailing_updates_flush``), unless a later move has published first. Every
event carries the position's state when it is published, not the move's, so the last level
of a burst always reaches clients, a few seconds late at worst. A tick never waits on a
position's row lock (a close holds it across the venue call): such a position is bumped and
published by the sweep.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final, cast

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from marqetfi.core.events import publish
from trading import terms
from trading.models import Position, ProtectiveOrder
from trading.presenters import position_data
from trading.triggers.index import (
    ARMED,
    KEY_PREFIX,
    LONG,
    PROTECTIVE_SET,
    Entry,
    chunks,
    entry_write,
    protective_member,
    redis_connection,
)

logger = logging.getLogger(__name__)

# Per position, set while its last ``position.updated`` for a trailing move is younger than
# the interval; and the positions whose later moves were not published yet.
PUBLISHED_KEY: Final = f"{KEY_PREFIX}trailing:published:"
UNPUBLISHED_KEY: Final = f"{KEY_PREFIX}trailing:unpublished"
FLUSH_BATCH: Final = 500


def _improves(side: str, price: Decimal, best: Decimal | None) -> bool:
    """A closing price better than the trailing stop's best so far (higher for a long)."""
    if best is None:
        return True
    return price > best if side == LONG else price < best


def trailing_move(*, symbol: str, side: str, price: Decimal, ids: Sequence[Any]) -> tuple[int, set[str]]:
    """Move the armed trailing stops ``ids`` of one side whose best ``price`` improves on.

    One UPDATE per distinct trail (percent or distance), the best and the stop persisted
    together, and the index re-scored one-way. Returns how many rows moved and the ids of
    those that were due to (the others are not armed, or already at least that far).
    """
    better = Q(best_price__lt=price) if side == LONG else Q(best_price__gt=price)
    trails: dict[tuple[Decimal | None, Decimal | None], list[Any]] = defaultdict(list)
    position_of: dict[Any, Any] = {}
    for chunk in chunks(list(ids)):
        # By primary key alone, the rest checked here: the cheapest plan whatever the statistics.
        rows = (
            ProtectiveOrder.objects.filter(pk__in=chunk)
            .order_by()
            .values_list(
                "pk", "position_id", "status", "side", "kind", "best_price", "trail_percent", "trail_distance"
            )
        )
        for pk, position_id, status, row_side, kind, best, percent, distance in rows:
            if (status, row_side, kind) == (ARMED, side, ProtectiveOrder.Kind.TRAILING_STOP) and _improves(
                side, price, best
            ):
                trails[(percent, distance)].append(pk)
                position_of[pk] = position_id
    due = {str(pk) for pks in trails.values() for pk in pks}
    if not trails:
        return 0, due
    moved = 0
    moved_positions: set[Any] = set()
    now = timezone.now()
    with redis_connection().pipeline(transaction=False) as pipe:
        for (percent, distance), pks in trails.items():
            if percent is None and distance is None:
                continue
            stop = terms.trailing_stop_price(side=side, best=price, percent=percent, distance=distance)
            for chunk in chunks(pks):
                count = ProtectiveOrder.objects.filter(
                    Q(best_price__isnull=True) | better, pk__in=chunk, status=ARMED
                ).update(best_price=price, trigger_price=stop, updated_at=now)
                if count:
                    # A row of the chunk that did not move was moved as far by another
                    # process: bumping its position's version once more is harmless.
                    moved_positions.update(position_of[pk] for pk in chunk)
                moved += count
                for pk in chunk:
                    entry = Entry(
                        symbol=symbol,
                        member=protective_member(pk),
                        fire_set=PROTECTIVE_SET[(side, ProtectiveOrder.Kind.TRAILING_STOP)],
                        fire_price=stop,
                        trailing_side=side,
                        best=price,
                    )
                    entry_write(pipe, entry, existing_only=True)
        pipe.execute()
    if moved_positions:
        _positions_moved(sorted(moved_positions, key=str))
    return moved, due


def _positions_moved(position_ids: Sequence[Any]) -> None:
    """The trailing stops of these positions moved: bump their ``resource_version`` and publish
    them, throttled. Never raises, and never waits: the tick that moved them goes on to fire
    what it crossed. A position locked by a close in progress (which holds the lock across the
    venue call) is left to the sweep, which bumps and publishes it."""
    try:
        bumped = set(_versions_bump(position_ids))
        interval = settings.TRAILING_UPDATE_MIN_INTERVAL_MS
        redis = redis_connection()
        with redis.pipeline(transaction=False) as pipe:
            for position_id in bumped:
                pipe.set(f"{PUBLISHED_KEY}{position_id}", 1, nx=True, px=interval)
            allowed = dict(zip(bumped, pipe.execute(), strict=True))
        now_due = [pk for pk in position_ids if allowed.get(pk)]
        later = [str(pk) for pk in position_ids if not allowed.get(pk)]
        if now_due:
            redis.srem(UNPUBLISHED_KEY, *[str(pk) for pk in now_due])
        for position_id in now_due:
            try:
                _position_publish(position_id)
            except Exception:
                logger.exception("trailing move of position %s not published", position_id)
                later.append(str(position_id))
        if later:
            redis.sadd(UNPUBLISHED_KEY, *later)
    except Exception:
        logger.exception("trailing moves of %s positions not published", len(position_ids))


def _versions_bump(position_ids: Sequence[Any]) -> list[Any]:
    """Bump the version of the open positions among these that no one holds locked; their ids."""
    bumped: list[Any] = []
    for chunk in chunks(position_ids):
        with transaction.atomic():
            free = list(
                Position.objects.select_for_update(skip_locked=True, no_key=True)
                .filter(pk__in=chunk, status=Position.Status.OPEN)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            Position.objects.filter(pk__in=free).update(
                resource_version=F("resource_version") + 1, updated_at=timezone.now()
            )
        bumped.extend(free)
    return bumped


def _position_publish(position_id: Any, *, bump: bool = False) -> bool:
    """Publish ``position.updated`` with the position as it is now (its version bumped first if
    ``bump``); False if it is not open any more."""
    with transaction.atomic():
        if bump:
            position = Position.objects.select_for_update(no_key=True).filter(pk=position_id).first()
            if position is not None and position.status == Position.Status.OPEN:
                position.resource_version += 1
                position.save(update_fields=["resource_version", "updated_at"])
        else:
            position = Position.objects.filter(pk=position_id).first()
        if position is None or position.status != Position.Status.OPEN:
            return False
        publish(user_id=position.user_id, type="position.updated", data=position_data(position))
    return True


def trailing_updates_flush(*, batch: int = FLUSH_BATCH) -> int:
    """Publish the positions whose last trailing moves were not published (throttled, or locked
    at the time): the sweep's trailing edge. Each version is bumped again first, so the event is
    newer than any a client holds. Returns how many events were published; a position closed
    since is dropped."""
    redis = redis_connection()
    published = 0
    while True:
        members = cast("list[bytes]", redis.spop(UNPUBLISHED_KEY, batch) or [])
        position_ids = [m.decode() for m in members]
        failed: list[str] = []
        for position_id in position_ids:
            try:
                published += _position_publish(position_id, bump=True)
            except Exception:
                logger.exception("trailing move of position %s not published", position_id)
                failed.append(position_id)
        if failed:
            redis.sadd(UNPUBLISHED_KEY, *failed)
        if failed or len(position_ids) < batch:
            return published
