"""The trigger index: per symbol, six Redis sorted sets ``marqetfi:triggers:<SYMBOL>:<name>``,
members ``p:<protective order id>`` and ``o:<order id>``:

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

A tick asks the six sets in one round trip (``candidates``), so it costs O(log n + k) for the
k members it reaches. Scores are floats, a candidate filter only: every candidate is checked
again with the Decimals of its row before anything happens. ``float()`` of a Decimal is
monotonic, so the inclusive ranges never miss a crossed member (an improvement of a trailing
stop's best smaller than a float can tell waits for the next one). Trailing stops move one
way (up for a long, down for a short), so their scores are written with ``GT`` / ``LT``: a
late or concurrent writer never moves a stop back.

Two hashes go with the sets: ``owner`` (member -> the position it acts on, or the member
itself for a limit open), by which the firing queue keeps one position's triggers in order,
and ``queued`` (member -> where it was claimed from and when): a crossed member leaves the
sets when a tick claims it for the firing queue (``trading.triggers.queue``) and is held in
``queued`` until the firing consumer has fired it or put it back.

The index is a cache of the database: written after the commit that armed or disarmed a
trigger, a failure logged and left to the sweep, which puts it right (``index_reconcile``,
which counts queued members as indexed and never writes them back while they are queued).
It knows the trading models and nothing of the services that change them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Final

from django.db.models import Count
from django_redis import get_redis_connection
from redis import Redis
from redis.client import Pipeline

from trading import terms
from trading.models import Order, ProtectiveOrder

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "marqetfi:triggers:"
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
OWNER: Final = "owner"  # hash: member -> the position it acts on (its firing order's key)
QUEUED: Final = "queued"  # hash: member -> {"g": owner, "s": sets left, "t": ms} while queued

ARMED = ProtectiveOrder.Status.ARMED
# Native stops are held and fired by their venue: never in the index, never fired by us.
SYNTHETIC = ProtectiveOrder.ExecutionMode.SYNTHETIC
LONG, SHORT = terms.LONG, terms.SHORT

# Where a protective order of (side, kind) waits, and where a limit order of (side, purpose).
PROTECTIVE_SET: Final[dict[tuple[str, str], str]] = {
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
ENTRY_FIELDS: Final = ("symbol", "side", "kind", "status", "trigger_price", "best_price", "position")


def index_key(symbol: str, name: str) -> str:
    return f"{KEY_PREFIX}{symbol}:{name}"


def redis_connection() -> Redis:
    redis: Redis = get_redis_connection("default")
    return redis


def protective_member(pk: Any) -> str:
    return f"p:{pk}"


def order_member(pk: Any) -> str:
    return f"o:{pk}"


def member_id(member: bytes | str) -> tuple[str, str]:
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
    owner: str = ""  # the position it acts on (firing order); empty: the member alone


def protective_entry(protective: ProtectiveOrder) -> Entry:
    trailing = protective.kind == ProtectiveOrder.Kind.TRAILING_STOP
    return Entry(
        symbol=protective.symbol,
        member=protective_member(protective.pk),
        fire_set=PROTECTIVE_SET[(protective.side, protective.kind)],
        fire_price=protective.trigger_price,
        trailing_side=protective.side if trailing else None,
        best=protective.best_price if trailing else None,
        owner=str(protective.position_id),
    )


def order_entry(order: Order) -> Entry | None:
    if order.status != Order.Status.OPEN or order.type != Order.Type.LIMIT or order.price is None:
        return None
    return Entry(
        symbol=order.symbol,
        member=order_member(order.pk),
        fire_set=_ORDER_SET[(order.side, order.purpose)],
        fire_price=order.price,
        owner=str(order.position_id) if order.position_id is not None else "",
    )


def entry_write(pipe: Pipeline, entry: Entry, *, existing_only: bool = False, exact: bool = False) -> None:
    """Queue the writes of ``entry``: ``existing_only`` never adds a member (it may have left
    meanwhile); ``exact`` sets a trailing stop's scores even if that moves them back."""
    key = partial(index_key, entry.symbol)
    if not existing_only:
        pipe.hset(key(OWNER), entry.member, entry.owner or entry.member)
    if entry.trailing_side is None:
        pipe.zadd(key(entry.fire_set), {entry.member: score(entry.fire_price)}, xx=existing_only)
        return
    one_way = {
        "gt": entry.trailing_side == LONG and not exact,
        "lt": entry.trailing_side == SHORT and not exact,
    }
    pipe.zadd(key(entry.fire_set), {entry.member: score(entry.fire_price)}, xx=existing_only, **one_way)
    if entry.best is not None:
        pipe.zadd(
            key(_REKEY_SET[entry.trailing_side]),
            {entry.member: score(entry.best)},
            xx=existing_only,
            **one_way,
        )


def members_remove(symbol: str, members: Sequence[str]) -> None:
    if not members:
        return
    with redis_connection().pipeline(transaction=False) as pipe:
        for name in SETS:
            pipe.zrem(index_key(symbol, name), *members)
        pipe.hdel(index_key(symbol, OWNER), *members)
        pipe.execute()


@dataclass(frozen=True)
class Queued:
    """A member claimed for firing and not yet fired or put back."""

    owner: str
    sets: tuple[str, ...]
    queued_ms: int

    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.queued_ms / 1000)


def queued_members(symbol: str) -> dict[str, Queued]:
    """The members of ``symbol`` the firing queue holds (claimed by a tick, not yet settled)."""
    found: dict[Any, Any] = redis_connection().hgetall(index_key(symbol, QUEUED))
    queued: dict[str, Queued] = {}
    for raw_member, raw in found.items():
        member = raw_member.decode() if isinstance(raw_member, bytes) else str(raw_member)
        try:
            value = json.loads(raw)
            queued[member] = Queued(
                owner=str(value["g"]), sets=tuple(value.get("s") or ()), queued_ms=int(value["t"])
            )
        except (ValueError, KeyError, TypeError):
            queued[member] = Queued(owner=member, sets=(), queued_ms=0)
    return queued


def protective_index(protective_id: Any) -> None:
    """Put an armed protective order in its symbol's index (or take it out if it is not armed).

    Called after the commit that armed it; the index is a cache, so a failure here is logged
    and left to the sweep.
    """
    try:
        protective = ProtectiveOrder.objects.filter(pk=protective_id).first()
        if protective is None:
            return
        if protective.status != ARMED or protective.execution_mode != SYNTHETIC:
            members_remove(protective.symbol, [protective_member(protective.pk)])
            return
        with redis_connection().pipeline(transaction=False) as pipe:
            entry_write(pipe, protective_entry(protective))
            pipe.execute()
    except Exception:
        logger.exception("protective order %s not indexed; the sweep will", protective_id)


def protective_rekey(entries: Sequence[Entry]) -> None:
    """Move already indexed triggers to their new scores, in one pipeline and without reading
    their rows: called after the commit that changed their prices in place (the platform's
    margin call and liquidation after a fill). ``XX``: a member that left meanwhile (fired,
    cancelled) is not added back; one missing is the sweep's to put right."""
    if not entries:
        return
    try:
        with redis_connection().pipeline(transaction=False) as pipe:
            for entry in entries:
                entry_write(pipe, entry, existing_only=True, exact=True)
            pipe.execute()
    except Exception:
        logger.exception("triggers %s not re-keyed; the sweep will", [entry.member for entry in entries])


def protective_unindex(protective_id: Any) -> None:
    """Take a protective order (fired, cancelled) out of its symbol's index."""
    try:
        symbol = ProtectiveOrder.objects.filter(pk=protective_id).values_list("symbol", flat=True).first()
        if symbol is not None:
            members_remove(symbol, [protective_member(protective_id)])
    except Exception:
        logger.exception("protective order %s not unindexed; the index heals itself", protective_id)


def order_index(order_id: Any) -> None:
    """Put a resting limit order in its symbol's index (or take it out if it no longer rests)."""
    try:
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            return
        entry = order_entry(order)
        if entry is None:
            members_remove(order.symbol, [order_member(order.pk)])
            return
        with redis_connection().pipeline(transaction=False) as pipe:
            entry_write(pipe, entry)
            pipe.execute()
    except Exception:
        logger.exception("limit order %s not indexed; the sweep will", order_id)


def order_unindex(order_id: Any) -> None:
    """Take an order (filled, cancelled) out of its symbol's index."""
    try:
        symbol = Order.objects.filter(pk=order_id).values_list("symbol", flat=True).first()
        if symbol is not None:
            members_remove(symbol, [order_member(order_id)])
    except Exception:
        logger.exception("limit order %s not unindexed; the index heals itself", order_id)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def score(value: Decimal) -> float:
    """A price as a sorted-set score. Redis keeps scores as doubles, so this is the one
    place a price becomes a float: monotonic, so a range query never misses a crossed member,
    and every candidate is checked again with its row's Decimals."""
    return float(value)


def candidates(
    symbol: str, *, bid: Decimal, ask: Decimal, fire_limit: int | None = None
) -> list[list[bytes]]:
    """The members of ``symbol``'s index this bid and ask reach, one list per set of ``SETS``:
    crossed ones in the four fire sets (at most ``fire_limit`` of each: enough to tell that
    something crossed, when the firing queue claims them inside Redis), trailing stops whose
    best they improve on in the two re-key sets. One round trip; the database is not read."""
    key = partial(index_key, symbol)
    bid_score, ask_score = repr(score(bid)), repr(score(ask))
    start, num = (0, fire_limit) if fire_limit is not None else (None, None)
    with redis_connection().pipeline(transaction=False) as pipe:
        pipe.zrangebyscore(key(BID_BELOW), bid_score, "+inf", start=start, num=num)
        pipe.zrangebyscore(key(BID_ABOVE), "-inf", bid_score, start=start, num=num)
        pipe.zrangebyscore(key(ASK_ABOVE), "-inf", ask_score, start=start, num=num)
        pipe.zrangebyscore(key(ASK_BELOW), ask_score, "+inf", start=start, num=num)
        pipe.zrangebyscore(key(BID_REKEY), "-inf", f"({bid_score}")
        pipe.zrangebyscore(key(ASK_REKEY), f"({ask_score}", "+inf")
        found: list[list[bytes]] = pipe.execute()
    return found


# --- reconciling ---------------------------------------------------------------------------


def _expected_counts(symbol: str) -> dict[str, int]:
    counts = dict.fromkeys(SETS, 0)
    armed = (
        ProtectiveOrder.objects.filter(symbol=symbol, status=ARMED, execution_mode=SYNTHETIC)
        .values_list("side", "kind")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for side, kind, n in armed:
        counts[PROTECTIVE_SET[(side, kind)]] += n
    trailing = (
        ProtectiveOrder.objects.filter(
            symbol=symbol,
            status=ARMED,
            execution_mode=SYNTHETIC,
            kind=ProtectiveOrder.Kind.TRAILING_STOP,
            best_price__isnull=False,
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
    armed = (
        ProtectiveOrder.objects.filter(symbol=symbol, status=ARMED, execution_mode=SYNTHETIC)
        .order_by()
        .only(*ENTRY_FIELDS)
    )
    entries = [protective_entry(p) for p in armed.iterator()]
    resting = (
        Order.objects.filter(symbol=symbol, status=Order.Status.OPEN, type=Order.Type.LIMIT)
        .order_by()
        .only("symbol", "side", "type", "purpose", "status", "price", "position")
    )
    entries.extend(entry for order in resting.iterator() if (entry := order_entry(order)) is not None)
    return entries


def index_reconcile(symbol: str) -> bool:
    """Make the symbol's index hold exactly its armed triggers; returns whether it had to.

    Cheap when the index is right: its set sizes (and the owner hash's, one field per
    trigger) are compared with counts from the database. Otherwise every armed trigger is
    written again (trailing scores one-way) and every member whose row is no longer armed,
    checked again now, is removed: a trigger armed while this runs is never dropped.
    """
    redis = redis_connection()
    with redis.pipeline(transaction=False) as pipe:
        for name in SETS:
            pipe.zcard(index_key(symbol, name))
        pipe.hlen(index_key(symbol, OWNER))
        *counts, owners = pipe.execute()
        sizes = dict(zip(SETS, counts, strict=True))
    queued = queued_members(symbol)
    for claimed in queued.values():  # out of the sets while the firing queue holds them
        for name in claimed.sets:
            if name in sizes:
                sizes[name] += 1
    if sizes == _expected_counts(symbol) and owners == sum(sizes[name] for name in FIRE_SETS):
        return False
    entries = [entry for entry in _expected_entries(symbol) if entry.member not in queued]
    expected = {entry.member for entry in entries}
    with redis.pipeline(transaction=False) as pipe:
        for entry in entries:
            entry_write(pipe, entry)
        for name in SETS:
            pipe.zrange(index_key(symbol, name), 0, -1)
        pipe.hkeys(index_key(symbol, OWNER))
        *replies, owned = pipe.execute()
    indexed = {member.decode() for members in replies[-len(SETS) :] for member in members}
    indexed |= {member.decode() for member in owned} - set(queued)
    extra = [member_id(member) for member in indexed - expected]
    still = {
        str(pk)
        for pk in _armed_now(
            [pk for kind, pk in extra if kind == "p"], [pk for kind, pk in extra if kind == "o"]
        )
    }
    members_remove(symbol, [f"{kind}:{pk}" for kind, pk in extra if pk not in still])
    logger.info("trigger index of %s rebuilt (%s armed)", symbol, len(entries))
    return True


def _armed_now(protective_ids: Sequence[str], order_ids: Sequence[str]) -> list[Any]:
    armed: list[Any] = []
    for chunk in chunks(list(protective_ids)):
        armed += ProtectiveOrder.objects.filter(
            pk__in=chunk, status=ARMED, execution_mode=SYNTHETIC
        ).values_list("pk", flat=True)
    for chunk in chunks(list(order_ids)):
        armed += Order.objects.filter(
            pk__in=chunk, status=Order.Status.OPEN, type=Order.Type.LIMIT
        ).values_list("pk", flat=True)
    return armed
