"""Trailing stops follow the best closing price since they were armed (``best_price``) and sit
``terms.trailing_stop_price`` behind it. Moved stops are persisted, not published (a position
event per tick would flood clients; ``GET /positions`` shows the current stop).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.utils import timezone

from trading import terms
from trading.models import ProtectiveOrder
from trading.triggers.index import (
    ARMED,
    LONG,
    PROTECTIVE_SET,
    Entry,
    chunks,
    entry_write,
    protective_member,
    redis_connection,
)


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
    for chunk in chunks(list(ids)):
        # By primary key alone, the rest checked here: the cheapest plan whatever the statistics.
        rows = (
            ProtectiveOrder.objects.filter(pk__in=chunk)
            .order_by()
            .values_list("pk", "status", "side", "kind", "best_price", "trail_percent", "trail_distance")
        )
        for pk, status, row_side, kind, best, percent, distance in rows:
            if (status, row_side, kind) == (ARMED, side, ProtectiveOrder.Kind.TRAILING_STOP) and _improves(
                side, price, best
            ):
                trails[(percent, distance)].append(pk)
    due = {str(pk) for pks in trails.values() for pk in pks}
    if not trails:
        return 0, due
    moved = 0
    now = timezone.now()
    with redis_connection().pipeline(transaction=False) as pipe:
        for (percent, distance), pks in trails.items():
            if percent is None and distance is None:
                continue
            stop = terms.trailing_stop_price(side=side, best=price, percent=percent, distance=distance)
            for chunk in chunks(pks):
                moved += ProtectiveOrder.objects.filter(
                    Q(best_price__isnull=True) | better, pk__in=chunk, status=ARMED
                ).update(best_price=price, trigger_price=stop, updated_at=now)
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
    return moved, due
