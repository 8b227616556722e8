"""The trigger engine: stop-losses, take-profits, trailing stops and resting limit orders fired
when the market crosses them.

Positions close on their side of the book (``terms.closing_price``): a long at the bid, a
short at the ask. A long's stop fires when the bid falls to it, its take-profit when the bid
rises to it; a short's the other way round on the ask. A trailing stop follows the best
closing price since it was armed (``best_price``) and sits ``terms.trailing_stop_price``
behind it. A resting limit order opens a long when the ask falls to its price and a short
when the bid rises to it; a limit close fires where the position's take-profit would.

Index. Per symbol, six Redis sorted sets ``marqetfi:triggers:<SYMBOL>:<name>``, members
``p:<protective order id>`` and ``o:<order id>``:

==========  ===============  ==============================================================
name        a member fires   members (score)
==========  ===============  ==============================================================
bid_below   bid <= score     long stop-losses and long trailing stops (the stop)
bid_above   bid >= score     long take-profits, long limit closes, short limit opens
ask_above   ask >= score     short stop-losses and short trailing stops (the stop)
ask_below   ask <= score     short take-profits, short limit closes, long limit opens
bid_rekey   bid >  score     long trailing stops (their best bid): their stop must move up
ask_rekey   ask <  score     short trailing stops (their best ask): their stop must move down
==========  ===============  ==============================================================

A tick asks the six sets in one round trip, so it costs O(log n + k) for the k members it
reaches: the database is not read while nothing is crossed or moved. Every crossed trigger
fires on the tick that crossed it (a stop touched must not be skipped because the price came
back), synchronously, in the process that ingested the tick. Scores are floats, a candidate
filter only: every candidate is checked again with the Decimals of its row before anything
happens. ``float()`` of a Decimal is monotonic, so the inclusive ranges never miss a crossed
member (an improvement of a trailing stop's best smaller than a float can tell waits for the
next one). Trailing stops move one way (up for a long, down for a short), so their scores
are written with ``GT`` / ``LT``: a late or concurrent writer never moves a stop back.
Moved stops are persisted, not published (a position event per tick would flood clients;
``GET /positions`` shows the current stop).

Firing exactly once: a protective order fires in one transaction that locks its position
first, then moves the row from ``armed`` to ``fired`` by a conditional update; only the
caller that changed the row cancels the OCO twins and closes the position
(``position_close``). A venue failure rolls all of it back: the trigger stays armed and the
next tick or sweep tries again. Resting limit orders fire through ``order_limit_execute``,
exactly once by its own conditional status change.

The index is a cache of the database. ``triggers_sweep`` (beat, every few seconds) is the
safety net for ticks that never came (feed down, restart) and for a lost index: it prices
every symbol with armed triggers through ``price_for_execution`` (never a stale price or a
closed market), evaluates the armed rows from the database and puts the index right.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Final

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.client import Pipeline

from marqetfi.core.errors import ApplicationError
from pricing.market_hours import market_open
from pricing.selectors import pairs_by_symbol
from pricing.services.prices import PriceTick, price_for_execution, staleness_limit_ms
from trading import terms
from trading.models import Order, Position, ProtectiveOrder
from trading.services.orders import order_limit_execute
from trading.services.positions import (
    position_close,
    position_liquidate,
    position_lock,
    position_margin_call,
)

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "marqetfi:triggers:"
SWEEP_LOCK_KEY: Final = f"{KEY_PREFIX}sweep:lock"
SWEEP_LOCK_MS: Final = 60_000
# Rows read per query (SQLite caps the parameters of one statement).
CHUNK: Final = 500

BID_BELOW: Final = "bid_below"
BID_ABOVE: Final = "bid_above"
ASK_ABOVE: Final = "ask_above"
ASK_BELOW: Final = "ask_below"
BID_REKEY: Final = "bid_rekey"
ASK_REKEY: Final = "ask_rekey"
FIRE_SETS: Final = (BID_BELOW, BID_ABOVE, ASK_ABOVE, ASK_BELOW)
SETS: Final = (*FIRE_SETS, BID_REKEY, ASK_REKEY)

ARMED = ProtectiveOrder.Status.ARMED
LONG, SHORT = terms.LONG, terms.SHORT

# Where a protective order of (side, kind) waits, and where a limit order of (side, purpose).
_PROTECTIVE_SET: Final[dict[tuple[str, str], str]] = {
    (LONG, ProtectiveOrder.Kind.STOP_LOSS): BID_BELOW,
    (LONG, ProtectiveOrder.Kind.TRAILING_STOP): BID_BELOW,
    (LONG, ProtectiveOrder.Kind.TAKE_PROFIT): BID_ABOVE,
    (SHORT, ProtectiveOrder.Kind.STOP_LOSS): ASK_ABOVE,
    (SHORT, ProtectiveOrder.Kind.TRAILING_STOP): ASK_ABOVE,
    (SHORT, ProtectiveOrder.Kind.TAKE_PROFIT): ASK_BELOW,
    (LONG, ProtectiveOrder.Kind.MARGIN_CALL): BID_BELOW,
    (LONG, ProtectiveOrder.Kind.LIQUIDATION): BID_BELOW,
    (SHORT, ProtectiveOrder.Kind.MARGIN_CALL): ASK_ABOVE,
    (SHORT, ProtectiveOrder.Kind.LIQUIDATION): ASK_ABOVE,
}
_ORDER_SET: Final[dict[tuple[str, str], str]] = {
    (LONG, Order.Purpose.OPEN): ASK_BELOW,
    (SHORT, Order.Purpose.OPEN): BID_ABOVE,
    (LONG, Order.Purpose.CLOSE): BID_ABOVE,
    (SHORT, Order.Purpose.CLOSE): ASK_BELOW,
}
_REKEY_SET: Final = {LONG: BID_REKEY, SHORT: ASK_REKEY}
# What an index entry is made of, for reads of many rows.
_ENTRY_FIELDS: Final = ("symbol", "side", "kind", "status", "trigger_price", "best_price")


def index_key(symbol: str, name: str) -> str:
    return f"{KEY_PREFIX}{symbol}:{name}"


def _redis() -> Redis:
    redis: Redis = get_redis_connection("default")
    return redis


def _protective_member(pk: Any) -> str:
    return f"p:{pk}"


def _order_member(pk: Any) -> str:
    return f"o:{pk}"


def _member_id(member: bytes | str) -> tuple[str, str]:
    text = member.decode() if isinstance(member, bytes) else member
    kind, _, pk = text.partition(":")
    return kind, pk


def crossed(fire_set: str, price: Decimal, *, bid: Decimal, ask: Decimal) -> bool:
    """Whether a member of ``fire_set`` at ``price`` fires at this bid and ask (exact Decimals)."""
    if fire_set == BID_BELOW:
        return bid <= price
    if fire_set == BID_ABOVE:
        return bid >= price
    if fire_set == ASK_ABOVE:
        return ask >= price
    return ask <= price


def _improves(side: str, price: Decimal, best: Decimal | None) -> bool:
    """A closing price better than the trailing stop's best so far (higher for a long)."""
    if best is None:
        return True
    return price > best if side == LONG else price < best


# --- index entries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """Where one trigger sits in its symbol's index, at which scores."""

    symbol: str
    member: str
    fire_set: str
    fire_price: Decimal
    trailing_side: str | None = None  # trailing stops: also in the re-key set, scores one-way
    best: Decimal | None = None


def _protective_entry(protective: ProtectiveOrder) -> Entry:
    trailing = protective.kind == ProtectiveOrder.Kind.TRAILING_STOP
    return Entry(
        symbol=protective.symbol,
        member=_protective_member(protective.pk),
        fire_set=_PROTECTIVE_SET[(protective.side, protective.kind)],
        fire_price=protective.trigger_price,
        trailing_side=protective.side if trailing else None,
        best=protective.best_price if trailing else None,
    )


def _order_entry(order: Order) -> Entry | None:
    if order.status != Order.Status.OPEN or order.type != Order.Type.LIMIT or order.price is None:
        return None
    return Entry(
        symbol=order.symbol,
        member=_order_member(order.pk),
        fire_set=_ORDER_SET[(order.side, order.purpose)],
        fire_price=order.price,
    )


def _entry_write(pipe: Pipeline, entry: Entry, *, existing_only: bool = False, exact: bool = False) -> None:
    """Queue the writes of ``entry``: ``existing_only`` never adds a member (it may have left
    meanwhile); ``exact`` sets a trailing stop's scores even if that moves them back."""
    key = partial(index_key, entry.symbol)
    if entry.trailing_side is None:
        pipe.zadd(key(entry.fire_set), {entry.member: float(entry.fire_price)}, xx=existing_only)
        return
    one_way = {
        "gt": entry.trailing_side == LONG and not exact,
        "lt": entry.trailing_side == SHORT and not exact,
    }
    pipe.zadd(key(entry.fire_set), {entry.member: float(entry.fire_price)}, xx=existing_only, **one_way)
    if entry.best is not None:
        pipe.zadd(
            key(_REKEY_SET[entry.trailing_side]),
            {entry.member: float(entry.best)},
            xx=existing_only,
            **one_way,
        )


def _members_remove(symbol: str, members: Sequence[str]) -> None:
    if not members:
        return
    with _redis().pipeline(transaction=False) as pipe:
        for name in SETS:
            pipe.zrem(index_key(symbol, name), *members)
        pipe.execute()


def protective_index(protective_id: Any) -> None:
    """Put an armed protective order in its symbol's index (or take it out if it is not armed).

    Called after the commit that armed it; the index is a cache, so a failure here is logged
    and left to the sweep.
    """
    try:
        protective = ProtectiveOrder.objects.filter(pk=protective_id).first()
        if protective is None:
            return
        if protective.status != ARMED:
            _members_remove(protective.symbol, [_protective_member(protective.pk)])
            return
        with _redis().pipeline(transaction=False) as pipe:
            _entry_write(pipe, _protective_entry(protective))
            pipe.execute()
    except Exception:
        logger.exception("protective order %s not indexed; the sweep will", protective_id)


def protective_unindex(protective_id: Any) -> None:
    """Take a protective order (fired, cancelled) out of its symbol's index."""
    try:
        symbol = ProtectiveOrder.objects.filter(pk=protective_id).values_list("symbol", flat=True).first()
        if symbol is not None:
            _members_remove(symbol, [_protective_member(protective_id)])
    except Exception:
        logger.exception("protective order %s not unindexed; the index heals itself", protective_id)


def order_index(order_id: Any) -> None:
    """Put a resting limit order in its symbol's index (or take it out if it no longer rests)."""
    try:
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            return
        entry = _order_entry(order)
        if entry is None:
            _members_remove(order.symbol, [_order_member(order.pk)])
            return
        with _redis().pipeline(transaction=False) as pipe:
            _entry_write(pipe, entry)
            pipe.execute()
    except Exception:
        logger.exception("limit order %s not indexed; the sweep will", order_id)


def order_unindex(order_id: Any) -> None:
    """Take an order (filled, cancelled) out of its symbol's index."""
    try:
        symbol = Order.objects.filter(pk=order_id).values_list("symbol", flat=True).first()
        if symbol is not None:
            _members_remove(symbol, [_order_member(order_id)])
    except Exception:
        logger.exception("limit order %s not unindexed; the index heals itself", order_id)


# --- firing -------------------------------------------------------------------------------


def _after_commit_unindex(protective_id: Any) -> None:
    transaction.on_commit(partial(protective_unindex, protective_id))


def protective_fire(*, protective_id: Any, bid: Decimal, ask: Decimal) -> bool:
    """Fire one protective order if ``bid`` / ``ask`` cross it; True if this call fired it.

    Exactly once however many ticks and sweeps see it at the same moment: the position is
    locked, then the row moves from armed to fired by a conditional update, and only the
    caller whose update changed it cancels the OCO twins and closes the position. Any
    failure (the venue's close above all) rolls everything back and leaves it armed.
    """
    position_id = (
        ProtectiveOrder.objects.filter(pk=protective_id, status=ARMED)
        .values_list("position_id", flat=True)
        .first()
    )
    if position_id is None:
        return False
    try:
        with transaction.atomic():
            fired = _fire_locked(protective_id=protective_id, position_id=position_id, bid=bid, ask=ask)
    except ApplicationError as exc:
        logger.warning(
            "protective order %s not fired, still armed: %s",
            protective_id,
            exc,
            extra={"protective_id": str(protective_id), "code": exc.code},
        )
        return False
    except Exception:
        logger.exception("protective order %s not fired, still armed", protective_id)
        return False
    if fired is None:
        return False
    logger.info(
        "%s of position %s fired at %s",
        fired.kind,
        position_id,
        fired.fired_price,
        extra={"protective_id": str(protective_id), "symbol": fired.symbol},
    )
    return True


def _fire_locked(
    *, protective_id: Any, position_id: Any, bid: Decimal, ask: Decimal
) -> ProtectiveOrder | None:
    """``protective_fire`` within its transaction: the row it fired, or None if not this call's to fire."""
    position = position_lock(position_id=position_id)
    protective = ProtectiveOrder.objects.filter(pk=protective_id, status=ARMED).first()
    if protective is None:
        return None
    if position.status != Position.Status.OPEN:  # closed without it: nothing left to protect
        ProtectiveOrder.objects.filter(pk=protective.pk, status=ARMED).update(
            status=ProtectiveOrder.Status.CANCELLED, updated_at=timezone.now()
        )
        _after_commit_unindex(protective.pk)
        return None
    if not crossed(_protective_entry(protective).fire_set, protective.trigger_price, bid=bid, ask=ask):
        return None
    now = timezone.now()
    price = terms.closing_price(side=protective.side, bid=bid, ask=ask)
    fired = ProtectiveOrder.objects.filter(pk=protective.pk, status=ARMED).update(
        status=ProtectiveOrder.Status.FIRED, fired_at=now, fired_price=price, updated_at=now
    )
    if fired != 1:
        return None
    protective.status = ProtectiveOrder.Status.FIRED
    protective.fired_at, protective.fired_price = now, price
    _after_commit_unindex(protective.pk)
    _fire_effect(position, protective)
    return protective


def _fire_effect(position: Position, protective: ProtectiveOrder) -> None:
    """What a fired row does: warn (margin call), liquidate, or cancel its twins and close."""
    if protective.kind == ProtectiveOrder.Kind.MARGIN_CALL:
        position_margin_call(position=position, protective=protective)
        return
    if protective.kind == ProtectiveOrder.Kind.LIQUIDATION:
        position_liquidate(position=position, protective=protective)
        return
    for twin in ProtectiveOrder.objects.select_for_update(no_key=True).filter(
        position_id=position.pk, status=ARMED
    ):
        if twin.kind in ProtectiveOrder.RISK_KINDS:
            continue  # the close cancels them with everything else armed on the position
        twin.status = ProtectiveOrder.Status.CANCELLED
        twin.save(update_fields=["status", "updated_at"])
        _after_commit_unindex(twin.pk)
    position_close(position_id=position.pk, closed_by=protective.kind, protective=protective)


def order_fire(*, order_id: Any, bid: Decimal, ask: Decimal) -> bool:
    """Execute a resting limit order if ``bid`` / ``ask`` cross its price; True if this call did."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return False
    entry = _order_entry(order)
    if entry is None:
        order_unindex(order.pk)
        return False
    if not crossed(entry.fire_set, entry.fire_price, bid=bid, ask=ask):
        return False
    try:
        executed = order_limit_execute(order_id=order.pk)
    except Exception:
        logger.exception("limit order %s failed to execute", order.pk)
        executed = None
    if Order.objects.filter(pk=order.pk).exclude(status=Order.Status.OPEN).exists():
        order_unindex(order.pk)
    return executed is not None


# --- trailing stops --------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _trailing_move(*, symbol: str, side: str, price: Decimal, ids: Sequence[Any]) -> tuple[int, set[str]]:
    """Move the armed trailing stops ``ids`` of one side whose best ``price`` improves on.

    One UPDATE per distinct trail (percent or distance), the best and the stop persisted
    together, and the index re-scored one-way. Returns how many rows moved and the ids of
    those that were due to (the others are not armed, or already at least that far).
    """
    better = Q(best_price__lt=price) if side == LONG else Q(best_price__gt=price)
    trails: dict[tuple[Decimal | None, Decimal | None], list[Any]] = defaultdict(list)
    for chunk in _chunks(list(ids)):
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
    with _redis().pipeline(transaction=False) as pipe:
        for (percent, distance), pks in trails.items():
            if percent is None and distance is None:
                continue
            stop = terms.trailing_stop_price(side=side, best=price, percent=percent, distance=distance)
            for chunk in _chunks(pks):
                moved += ProtectiveOrder.objects.filter(
                    Q(best_price__isnull=True) | better, pk__in=chunk, status=ARMED
                ).update(best_price=price, trigger_price=stop, updated_at=now)
                for pk in chunk:
                    entry = Entry(
                        symbol=symbol,
                        member=_protective_member(pk),
                        fire_set=_PROTECTIVE_SET[(side, ProtectiveOrder.Kind.TRAILING_STOP)],
                        fire_price=stop,
                        trailing_side=side,
                        best=price,
                    )
                    _entry_write(pipe, entry, existing_only=True)
        pipe.execute()
    return moved, due


# --- ticks ---------------------------------------------------------------------------------


@dataclass
class TickOutcome:
    candidates: int = 0
    moved: int = 0
    fired: int = 0


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


def _score(value: Decimal) -> str:
    return repr(float(value))


def tick_evaluate(tick: PriceTick) -> TickOutcome:
    """Move the trailing stops this tick improves on and fire the triggers it crosses."""
    outcome = TickOutcome()
    if not tick.market_open:
        return outcome
    key = partial(index_key, tick.symbol)
    bid, ask = _score(tick.bid), _score(tick.ask)
    with _redis().pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(key(BID_BELOW), bid, "+inf")
        pipe.zrangebyscore(key(BID_ABOVE), "-inf", bid)
        pipe.zrangebyscore(key(ASK_ABOVE), "-inf", ask)
        pipe.zrangebyscore(key(ASK_BELOW), ask, "+inf")
        pipe.zrangebyscore(key(BID_REKEY), "-inf", f"({bid}")
        pipe.zrangebyscore(key(ASK_REKEY), f"({ask}", "+inf")
        found: list[list[bytes]] = pipe.execute()
    outcome.candidates = sum(len(members) for members in found)
    if not outcome.candidates or not _tradable(tick):
        return outcome
    *to_fire, long_rekey, short_rekey = found
    for side, members, price in ((LONG, long_rekey, tick.bid), (SHORT, short_rekey, tick.ask)):
        if members:
            ids = [_member_id(member)[1] for member in members]
            moved, due = _trailing_move(symbol=tick.symbol, side=side, price=price, ids=ids)
            outcome.moved += moved
            _rekey_settle(tick.symbol, [pk for pk in ids if pk not in due])
    outcome.fired = _candidates_fire(tick.symbol, [m for ms in to_fire for m in ms], tick.bid, tick.ask)
    return outcome


def _rekey_settle(symbol: str, ids: Sequence[str]) -> None:
    """Candidates of a re-key set that were not due to move (another process moved them
    first, a score behind its row, a row no longer armed): set their scores from their rows
    or drop them, so that they are not read again on every tick."""
    if not ids:
        return
    rows: dict[str, ProtectiveOrder] = {}
    for chunk in _chunks(list(ids)):
        rows.update(
            {
                str(p.pk): p
                for p in ProtectiveOrder.objects.filter(pk__in=chunk).order_by().only(*_ENTRY_FIELDS)
            }
        )
    gone = [_protective_member(pk) for pk in ids if pk not in rows or rows[pk].status != ARMED]
    _members_remove(symbol, gone)
    with _redis().pipeline(transaction=False) as pipe:
        for protective in rows.values():
            if protective.status == ARMED:
                _entry_write(pipe, _protective_entry(protective), existing_only=True)
        pipe.execute()


def _candidates_fire(symbol: str, members: Iterable[bytes | str], bid: Decimal, ask: Decimal) -> int:
    """Fire the crossed ones among index candidates, each checked against its row first."""
    protective_ids: list[str] = []
    order_ids: list[str] = []
    for member in dict.fromkeys(members):
        kind, pk = _member_id(member)
        (protective_ids if kind == "p" else order_ids).append(pk)
    fired = 0
    gone: list[str] = []
    rescore: list[Entry] = []
    for chunk in _chunks(protective_ids):
        rows = {
            str(p.pk): p for p in ProtectiveOrder.objects.filter(pk__in=chunk).order_by().only(*_ENTRY_FIELDS)
        }
        for pk in chunk:
            protective = rows.get(pk)
            if protective is None or protective.status != ARMED:
                gone.append(_protective_member(pk))
                continue
            entry = _protective_entry(protective)
            if not crossed(entry.fire_set, protective.trigger_price, bid=bid, ask=ask):
                rescore.append(entry)  # the index was ahead of the row (a move rolled back)
                continue
            fired += protective_fire(protective_id=protective.pk, bid=bid, ask=ask)
    for pk in order_ids:
        try:
            fired += order_fire(order_id=pk, bid=bid, ask=ask)
        except Exception:
            logger.exception("limit order %s not evaluated", pk)
    _members_remove(symbol, gone)
    if rescore:
        with _redis().pipeline(transaction=False) as pipe:
            for entry in rescore:
                _entry_write(pipe, entry, existing_only=True, exact=True)
            pipe.execute()
    return fired


def trigger_tick_hook(tick: PriceTick) -> None:
    """A ``PRICE_TICK_HOOKS`` entry: evaluate every tick ingested. Never raises: the feed
    that called it must go on."""
    try:
        tick_evaluate(tick)
    except Exception:
        logger.exception("triggers not evaluated on a tick of %s", getattr(tick, "symbol", "?"))


# --- sweep ---------------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    symbols: int = 0
    fired: int = 0
    moved: int = 0
    reindexed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbols": self.symbols,
            "fired": self.fired,
            "moved": self.moved,
            "reindexed": self.reindexed,
            "skipped": self.skipped,
        }


_RELEASE_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def triggers_symbols() -> list[str]:
    """Symbols with armed protective orders or resting limit orders."""
    protective = ProtectiveOrder.objects.filter(status=ARMED).values_list("symbol", flat=True).distinct()
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
    redis = _redis()
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
    finally:
        redis.register_script(_RELEASE_LOCK)(keys=[SWEEP_LOCK_KEY], args=[token])
    return outcome


def _symbol_sweep(symbol: str, outcome: SweepOutcome) -> None:
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
            outcome.moved += _trailing_move(symbol=symbol, side=side, price=closing, ids=ids)[0]
    stops = [
        ProtectiveOrder.Kind.STOP_LOSS,
        ProtectiveOrder.Kind.TRAILING_STOP,
        ProtectiveOrder.Kind.MARGIN_CALL,
        ProtectiveOrder.Kind.LIQUIDATION,
    ]
    due = ProtectiveOrder.objects.filter(symbol=symbol, status=ARMED).filter(
        Q(side=LONG, kind__in=stops, trigger_price__gte=bid)
        | Q(side=LONG, kind=ProtectiveOrder.Kind.TAKE_PROFIT, trigger_price__lte=bid)
        | Q(side=SHORT, kind__in=stops, trigger_price__lte=ask)
        | Q(side=SHORT, kind=ProtectiveOrder.Kind.TAKE_PROFIT, trigger_price__gte=ask)
    )
    for protective_id in list(due.values_list("pk", flat=True)):
        outcome.fired += protective_fire(protective_id=protective_id, bid=bid, ask=ask)
    resting = Order.objects.filter(symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT).filter(
        Q(side=LONG, purpose=Order.Purpose.OPEN, price__gte=ask)
        | Q(side=SHORT, purpose=Order.Purpose.OPEN, price__lte=bid)
        | Q(side=LONG, purpose=Order.Purpose.CLOSE, price__lte=bid)
        | Q(side=SHORT, purpose=Order.Purpose.CLOSE, price__gte=ask)
    )
    for order_id in list(resting.values_list("pk", flat=True)):
        outcome.fired += order_fire(order_id=order_id, bid=bid, ask=ask)


def _expected_counts(symbol: str) -> dict[str, int]:
    counts = dict.fromkeys(SETS, 0)
    armed = (
        ProtectiveOrder.objects.filter(symbol=symbol, status=ARMED)
        .values_list("side", "kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for side, kind, n in armed:
        counts[_PROTECTIVE_SET[(side, kind)]] += n
    trailing = (
        ProtectiveOrder.objects.filter(
            symbol=symbol, status=ARMED, kind=ProtectiveOrder.Kind.TRAILING_STOP, best_price__isnull=False
        )
        .values_list("side")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for side, n in trailing:
        counts[_REKEY_SET[side]] += n
    resting = (
        Order.objects.filter(
            symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT, price__isnull=False
        )
        .values_list("side", "purpose")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for side, purpose, n in resting:
        counts[_ORDER_SET[(side, purpose)]] += n
    return counts


def _expected_entries(symbol: str) -> list[Entry]:
    armed = ProtectiveOrder.objects.filter(symbol=symbol, status=ARMED).order_by().only(*_ENTRY_FIELDS)
    entries = [_protective_entry(p) for p in armed.iterator()]
    resting = (
        Order.objects.filter(symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT)
        .order_by()
        .only("symbol", "side", "type", "purpose", "status", "price")
    )
    entries.extend(entry for order in resting.iterator() if (entry := _order_entry(order)) is not None)
    return entries


def index_reconcile(symbol: str) -> bool:
    """Make the symbol's index hold exactly its armed triggers; returns whether it had to.

    Cheap when the index is right: its set sizes are compared with counts from the
    database. Otherwise every armed trigger is written again (trailing scores one-way) and
    every member whose row is no longer armed, checked again now, is removed: a trigger
    armed while this runs is never dropped.
    """
    redis = _redis()
    with redis.pipeline(transaction=False) as pipe:
        for name in SETS:
            pipe.zcard(index_key(symbol, name))
        sizes = dict(zip(SETS, pipe.execute(), strict=True))
    if sizes == _expected_counts(symbol):
        return False
    entries = _expected_entries(symbol)
    expected = {entry.member for entry in entries}
    with redis.pipeline(transaction=False) as pipe:
        for entry in entries:
            _entry_write(pipe, entry)
        for name in SETS:
            pipe.zrange(index_key(symbol, name), 0, -1)
        replies = pipe.execute()
    indexed = {member.decode() for members in replies[-len(SETS) :] for member in members}
    extra = [_member_id(member) for member in indexed - expected]
    still = {
        str(pk)
        for pk in _armed_now(
            [pk for kind, pk in extra if kind == "p"], [pk for kind, pk in extra if kind == "o"]
        )
    }
    _members_remove(symbol, [f"{kind}:{pk}" for kind, pk in extra if pk not in still])
    logger.info("trigger index of %s rebuilt (%s armed)", symbol, len(entries))
    return True


def _armed_now(protective_ids: Sequence[str], order_ids: Sequence[str]) -> list[Any]:
    armed: list[Any] = []
    for chunk in _chunks(list(protective_ids)):
        armed += ProtectiveOrder.objects.filter(pk__in=chunk, status=ARMED).values_list("pk", flat=True)
    for chunk in _chunks(list(order_ids)):
        armed += Order.objects.filter(
            pk__in=chunk, status=Order.Status.OPEN, type=Order.Type.LIMIT
        ).values_list("pk", flat=True)
    return armed
