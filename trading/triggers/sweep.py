"""The sweep (beat, every few seconds): the safety net for ticks that never came (feed down,
restart) and for a lost index. It prices every symbol with armed triggers through
``price_for_execution`` (never a stale price or a closed market), evaluates the armed rows
from the database and puts the index right. It also publishes the trailing moves whose
``position.updated`` was throttled (``trailing_updates_flush``).

Triggers a tick enqueued are the firing consumer's: the sweep leaves them, and every other
trigger of their positions, alone (firing a take-profit ahead of a queued stop-loss would
break their order), unless they have waited longer than
``TRIGGER_FIRE_QUEUED_GRACE_SECONDS`` (no consumer running): then it forgets their queued
record, so that the index takes them back and the sweep fires them. A queue lost with its
Redis (a flush) loses the queued records too: the index is rebuilt from the database and the
sweep fires what is due, as for any lost index.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from django.conf import settings
from django.db.models import Q

from marqetfi.core.errors import ApplicationError
from pricing.services.prices import price_for_execution
from trading.models import Order, ProtectiveOrder
from trading.triggers.firing import order_fire, protective_fire
from trading.triggers.index import (
    ARMED,
    KEY_PREFIX,
    LONG,
    QUEUED,
    SHORT,
    SYNTHETIC,
    index_key,
    index_reconcile,
    order_member,
    protective_member,
    queued_members,
    redis_connection,
)
from trading.triggers.trailing import trailing_move, trailing_updates_flush

logger = logging.getLogger(__name__)

SWEEP_LOCK_KEY: Final = f"{KEY_PREFIX}sweep:lock"
SWEEP_LOCK_MS: Final = 60_000


@dataclass
class SweepOutcome:
    symbols: int = 0
    fired: int = 0
    moved: int = 0
    published: int = 0
    reindexed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "fired": self.fired,
            "moved": self.moved,
            "published": self.published,
            "reindexed": self.reindexed,
            "skipped": self.skipped,
        }


_RELEASE_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def triggers_symbols() -> list[str]:
    """Symbols with armed protective orders or resting limit orders."""
    protective = (
        ProtectiveOrder.objects.filter(status=ARMED, execution_mode=SYNTHETIC)
        .values_list("symbol", flat=True)
        .distinct()
    )
    resting = (
        Order.objects.filter(status=Order.Status.OPEN, type=Order.Type.LIMIT)
        .values_list("symbol", flat=True)
        .distinct()
    )
    return sorted(set(protective) | set(resting))


def triggers_sweep() -> SweepOutcome:
    """The safety net: evaluate every armed trigger from the database at a fresh price and
    put the index right. One sweep at a time (a Redis lock); a symbol without a fresh price
    from an open market is skipped, never triggered on."""
    outcome = SweepOutcome()
    redis = redis_connection()
    token = uuid.uuid4().hex
    if not redis.set(SWEEP_LOCK_KEY, token, nx=True, px=SWEEP_LOCK_MS):
        outcome.skipped["*"] = "sweep_running"
        return outcome
    try:
        for symbol in triggers_symbols():
            outcome.symbols += 1
            try:
                _symbol_sweep(symbol, outcome)
            except Exception:
                logger.exception("trigger sweep of %s failed", symbol)
                outcome.skipped[symbol] = "error"
        try:
            outcome.published = trailing_updates_flush()
        except Exception:
            logger.exception("throttled trailing moves not published")
    finally:
        redis.register_script(_RELEASE_LOCK)(keys=[SWEEP_LOCK_KEY], args=[token])
    return outcome


def _queued_held(symbol: str) -> tuple[set[str], set[str]]:
    """The members the firing queue holds for ``symbol`` and their owners (positions); the
    records older than the grace are forgotten here (and left out)."""
    grace: int = settings.TRIGGER_FIRE_QUEUED_GRACE_SECONDS
    queued = queued_members(symbol)
    stale = [member for member, held in queued.items() if held.age_seconds() > grace]
    if stale:
        logger.warning("%s triggers of %s queued over %ss: fired by the sweep", len(stale), symbol, grace)
        redis_connection().hdel(index_key(symbol, QUEUED), *stale)
    held = {member: q for member, q in queued.items() if member not in stale}
    return set(held), {q.owner for q in held.values()}


def _symbol_sweep(symbol: str, outcome: SweepOutcome) -> None:
    queued, owners = _queued_held(symbol)
    if index_reconcile(symbol):
        outcome.reindexed.append(symbol)
    try:
        price = price_for_execution(symbol)
    except ApplicationError as exc:  # stale, closed, unavailable: never trigger on it
        outcome.skipped[symbol] = exc.code
        return
    bid, ask = price.bid, price.ask
    trailing = ProtectiveOrder.objects.filter(
        symbol=symbol, status=ARMED, kind=ProtectiveOrder.Kind.TRAILING_STOP
    )
    for side, closing, better in ((LONG, bid, "best_price__lt"), (SHORT, ask, "best_price__gt")):
        ids = list(
            trailing.filter(Q(best_price__isnull=True) | Q(**{better: closing}), side=side).values_list(
                "pk", flat=True
            )
        )
        if ids:
            outcome.moved += trailing_move(symbol=symbol, side=side, price=closing, ids=ids)[0]
    stops = [
        ProtectiveOrder.Kind.STOP_LOSS,
        ProtectiveOrder.Kind.TRAILING_STOP,
        ProtectiveOrder.Kind.MARGIN_CALL,
        ProtectiveOrder.Kind.LIQUIDATION,
    ]
    due = ProtectiveOrder.objects.filter(symbol=symbol, status=ARMED, execution_mode=SYNTHETIC).filter(
        Q(side=LONG, kind__in=stops, trigger_price__gte=bid)
        | Q(side=LONG, kind=ProtectiveOrder.Kind.TAKE_PROFIT, trigger_price__lte=bid)
        | Q(side=SHORT, kind__in=stops, trigger_price__lte=ask)
        | Q(side=SHORT, kind=ProtectiveOrder.Kind.TAKE_PROFIT, trigger_price__gte=ask)
    )
    for protective_id, position_id in list(due.values_list("pk", "position_id")):
        if protective_member(protective_id) in queued or str(position_id) in owners:
            continue  # the consumer's, in order
        outcome.fired += protective_fire(protective_id=protective_id, bid=bid, ask=ask)
    resting = Order.objects.filter(symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT).filter(
        Q(side=LONG, purpose=Order.Purpose.OPEN, price__gte=ask)
        | Q(side=SHORT, purpose=Order.Purpose.OPEN, price__lte=bid)
        | Q(side=LONG, purpose=Order.Purpose.CLOSE, price__lte=bid)
        | Q(side=SHORT, purpose=Order.Purpose.CLOSE, price__gte=ask)
    )
    for order_id, position_id in list(resting.values_list("pk", "position_id")):
        if order_member(order_id) in queued or str(position_id) in owners:
            continue
        outcome.fired += order_fire(order_id=order_id, bid=bid, ask=ask)
