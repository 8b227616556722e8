"""Tick evaluation: every price tick ingested moves the trailing stops it improves on and
enqueues the triggers it crosses for the firing consumer (``trading.triggers.queue``): the
feed's thread never waits on a close, so a crash through thousands of stops does not delay
the next tick. Every crossed trigger is enqueued on the tick that crossed it, with that
tick's bid and ask (a stop touched must not be skipped because the price came back). The
database is not read while nothing is crossed or moved. The lookup asks each fire set for one
crossed member only (is anything crossed?); the crossed ones are then claimed inside Redis,
``CLAIM_CHUNK`` per script call (``triggers_enqueue``), so a crash through 10,000 stops costs
the tick about 40 short round trips, no id list, and never holds Redis for long.

``TRIGGER_FIRE_INLINE`` fires in the tick's thread instead, as before the queue (kept to
measure the old path against the new one in ``bench/trigger_crash.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from pricing.market_hours import market_open
from pricing.selectors import pairs_by_symbol
from pricing.services.prices import PriceTick, staleness_limit_ms
from trading.models import ProtectiveOrder
from trading.triggers.firing import order_fire, protective_fire
from trading.triggers.index import (
    ARMED,
    ENTRY_FIELDS,
    LONG,
    SHORT,
    Entry,
    candidates,
    chunks,
    crossed,
    entry_write,
    member_id,
    members_remove,
    protective_entry,
    protective_member,
    redis_connection,
)
from trading.triggers.queue import triggers_enqueue
from trading.triggers.trailing import trailing_move

logger = logging.getLogger(__name__)


@dataclass
class TickOutcome:
    # re-key candidates, and crossed ones: all of them inline, at most one per fire set when
    # the queue claims them inside Redis (``queued`` then counts them)
    candidates: int = 0
    moved: int = 0
    queued: int = 0
    fired: int = 0  # only with TRIGGER_FIRE_INLINE


def _tradable(tick: PriceTick) -> bool:
    """The pair's market is open now and the tick is fresh enough to execute on."""
    if not tick.market_open:
        return False
    pair = pairs_by_symbol([tick.symbol]).get(tick.symbol)
    if pair is None:
        return False
    now = timezone.now()
    if not market_open(pair.trading_hours, now):
        return False
    return now - tick.ts <= timedelta(milliseconds=staleness_limit_ms(pair.category))


def tick_evaluate(tick: PriceTick) -> TickOutcome:
    """Move the trailing stops this tick improves on and enqueue the triggers it crosses."""
    outcome = TickOutcome()
    if not tick.market_open:
        return outcome
    inline = settings.TRIGGER_FIRE_INLINE
    found = candidates(tick.symbol, bid=tick.bid, ask=tick.ask, fire_limit=None if inline else 1)
    outcome.candidates = sum(len(members) for members in found)
    if not outcome.candidates or not _tradable(tick):
        return outcome
    *to_fire, long_rekey, short_rekey = found
    for side, members, price in ((LONG, long_rekey, tick.bid), (SHORT, short_rekey, tick.ask)):
        if members:
            ids = [member_id(member)[1] for member in members]
            moved, due = trailing_move(symbol=tick.symbol, side=side, price=price, ids=ids)
            outcome.moved += moved
            _rekey_settle(tick.symbol, [pk for pk in ids if pk not in due])
    crossing = [m for ms in to_fire for m in ms]
    if inline:
        outcome.fired = _candidates_fire(tick.symbol, crossing, tick.bid, tick.ask)
    elif crossing:  # claimed inside Redis, in chunks: no crossed id comes back here
        outcome.queued = triggers_enqueue(symbol=tick.symbol, bid=tick.bid, ask=tick.ask, ts=tick.ts)
    return outcome


def _rekey_settle(symbol: str, ids: Sequence[str]) -> None:
    """Candidates of a re-key set that were not due to move (another process moved them
    first, a score behind its row, a row no longer armed): set their scores from their rows
    or drop them, so that they are not read again on every tick."""
    if not ids:
        return
    rows: dict[str, ProtectiveOrder] = {}
    for chunk in chunks(list(ids)):
        rows.update(
            {
                str(p.pk): p
                for p in ProtectiveOrder.objects.filter(pk__in=chunk).order_by().only(*ENTRY_FIELDS)
            }
        )
    gone = [protective_member(pk) for pk in ids if pk not in rows or rows[pk].status != ARMED]
    members_remove(symbol, gone)
    with redis_connection().pipeline(transaction=False) as pipe:
        for protective in rows.values():
            if protective.status == ARMED:
                entry_write(pipe, protective_entry(protective), existing_only=True)
        pipe.execute()


def _candidates_fire(symbol: str, members: Iterable[bytes | str], bid: Decimal, ask: Decimal) -> int:
    """Fire the crossed ones among index candidates, each checked against its row first
    (``TRIGGER_FIRE_INLINE`` only)."""
    protective_ids: list[str] = []
    order_ids: list[str] = []
    for member in dict.fromkeys(members):
        kind, pk = member_id(member)
        (protective_ids if kind == "p" else order_ids).append(pk)
    fired = 0
    gone: list[str] = []
    rescore: list[Entry] = []
    for chunk in chunks(protective_ids):
        rows = {
            str(p.pk): p for p in ProtectiveOrder.objects.filter(pk__in=chunk).order_by().only(*ENTRY_FIELDS)
        }
        for pk in chunk:
            protective = rows.get(pk)
            if protective is None or protective.status != ARMED:
                gone.append(protective_member(pk))
                continue
            entry = protective_entry(protective)
            if not crossed(entry.fire_set, protective.trigger_price, bid=bid, ask=ask):
                rescore.append(entry)  # the index was ahead of the row (a move rolled back)
                continue
            fired += protective_fire(protective_id=protective.pk, bid=bid, ask=ask)
    for pk in order_ids:
        try:
            fired += order_fire(order_id=pk, bid=bid, ask=ask)
        except Exception:
            logger.exception("limit order %s not evaluated", pk)
    members_remove(symbol, gone)
    if rescore:
        with redis_connection().pipeline(transaction=False) as pipe:
            for entry in rescore:
                entry_write(pipe, entry, existing_only=True, exact=True)
            pipe.execute()
    return fired


def trigger_tick_hook(tick: PriceTick) -> None:
    """A ``PRICE_TICK_HOOKS`` entry: evaluate every tick ingested. Never raises: the feed
    that called it must go on."""
    try:
        tick_evaluate(tick)
    except Exception:
        logger.exception("triggers not evaluated on a tick of %s", getattr(tick, "symbol", "?"))
