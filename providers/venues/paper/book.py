"""The paper venue's orders and positions, kept in the database (``PaperOrder``, ``PaperPosition``).

Market orders fill at once at the touch moved by the slippage against the trader; limit
orders rest until ``paper_match_resting_orders`` sees a tick that crosses them and then fill
at their limit. Positions aggregate per account, symbol and side. Whatever the caller got
wrong comes back as a rejected order with a stable ``reject_reason`` code, never as an
exception. Rows that two ticks or two requests could change at once are locked first; an
existing order is always locked before its position, so two paths never wait on each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery
from django.utils import timezone

from marqetfi.core.rows import Lock, RowSelect, row_update
from providers.base import (
    Market,
    OrderType,
    Quote,
    Side,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from providers.errors import ProviderError
from providers.models import PaperOrder, PaperPosition
from providers.venues.paper.markets import paper_pair
from providers.venues.paper.walk import round_to_step

QuoteOf = Callable[[str], Quote | None]

USDC_PLACES = 6
USDC_STEP = Decimal(1).scaleb(-USDC_PLACES)
LEVERAGE_PLACES = 2
LEVERAGE_STEP = Decimal(1).scaleb(-LEVERAGE_PLACES)
MAX_REF_LENGTH = 128
MAX_AMOUNT = Decimal(10) ** 17  # the amount columns hold 18 digits before the point
ENTRY_EXTRA_DIGITS = 4  # an averaged entry keeps this many digits below the tick
_BPS = Decimal(10_000)


def _plain(value: Decimal) -> Decimal:
    """Without the trailing zeros the database pads with; whole numbers stay plain (100, not 1E+2)."""
    normalized = value.normalize()
    return normalized.quantize(Decimal(1)) if normalized == normalized.to_integral_value() else normalized


def _to_venue_order(order: PaperOrder) -> VenueOrder:
    return VenueOrder(
        venue_order_id=str(order.pk),
        client_order_id=order.client_order_id,
        status=VenueOrderStatus(str(order.status)),
        filled_size=_plain(order.filled_size),
        avg_fill_price=None if order.avg_fill_price is None else _plain(order.avg_fill_price),
        reject_reason=order.reject_reason or None,
    )


def _to_venue_position(position: PaperPosition) -> VenuePosition:
    return VenuePosition(
        venue_position_id=str(position.pk),
        symbol=position.symbol,
        side=Side(position.side),
        size=_plain(position.size),
        entry_price=_plain(position.entry_price),
        collateral=_plain(position.collateral),
        leverage=_plain(position.leverage),
        extra={
            "realized_pnl": str(_plain(position.realized_pnl)),
            "opened_at": position.created_at.isoformat(),
        },
    )


def market_fill_price(
    *, quote: Quote, side: Side, opening: bool, slippage_bps: Decimal, tick: Decimal
) -> Decimal:
    """Buying (opening a long, closing a short) pays the ask plus slippage, rounded up to the tick;
    selling receives the bid minus slippage, rounded down."""
    buying = (side == Side.LONG) == opening
    if buying:
        return round_to_step(quote.ask * (_BPS + slippage_bps) / _BPS, tick, ROUND_CEILING)
    return max(round_to_step(quote.bid * (_BPS - slippage_bps) / _BPS, tick, ROUND_FLOOR), tick)


def _order_size(*, collateral: Decimal, leverage: Decimal, price: Decimal, market: Market) -> Decimal:
    return round_to_step(collateral * leverage / price, market.size_step, ROUND_DOWN)


def _rejection(order: VenueOrderRequest, market: Market | None) -> str | None:  # noqa: PLR0911 - one return per rule
    """The reason code an order is refused for, or None. Checks what the request alone shows."""
    try:
        Side(order.side)
        kind = OrderType(order.type)
    except ValueError:
        return "invalid_order"
    if len(order.account_ref) > MAX_REF_LENGTH or len(order.client_order_id) > MAX_REF_LENGTH:
        return "invalid_order"
    if market is None:
        return "unknown_symbol"
    try:
        if not _fits(order.collateral, USDC_PLACES) or order.collateral <= 0:
            return "invalid_collateral"
        if order.collateral < market.min_collateral:
            return "collateral_below_minimum"
        if not _fits(order.leverage, LEVERAGE_PLACES) or order.leverage < 1:
            return "invalid_leverage"
        if order.leverage > market.max_leverage:
            return "leverage_limit_exceeded"
        if kind == OrderType.LIMIT:
            if order.price is None or not _fits(order.price) or order.price <= 0:
                return "invalid_price"
            if order.price % market.tick_size != 0:
                return "price_off_tick"
        if not (_fits(order.stop_loss) and _fits(order.take_profit)):
            return "invalid_price"
    except (InvalidOperation, AttributeError, TypeError):
        return "invalid_order"
    return None


def _fits(value: Decimal | None, places: int = 18) -> bool:
    """Whether ``value`` is a finite number with at most ``places`` decimals, small enough for
    its column."""
    if value is None:
        return True
    try:
        if not value.is_finite() or abs(value) >= MAX_AMOUNT:
            return False
        exponent = value.normalize().as_tuple().exponent
    except (InvalidOperation, TypeError, AttributeError):
        return False
    return isinstance(exponent, int) and exponent >= -places


def _execution(
    order: VenueOrderRequest, market: Market, quote: Quote, slippage_bps: Decimal
) -> tuple[Decimal | None, Decimal]:
    """The price the order fills at now (None: it rests) and its size at the price it fills at.

    A limit already through the touch takes the market, never worse than its limit.
    """
    side = Side(order.side)
    price: Decimal | None = market_fill_price(
        quote=quote, side=side, opening=True, slippage_bps=slippage_bps, tick=market.tick_size
    )
    assert price is not None
    if order.type == OrderType.LIMIT:
        limit = order.price
        assert limit is not None
        if side == Side.LONG:
            price = min(price, limit) if quote.ask <= limit else None
        else:
            price = max(price, limit) if quote.bid >= limit else None
    size_price = price if price is not None else order.price
    assert size_price is not None
    return price, _order_size(
        collateral=order.collateral, leverage=order.leverage, price=size_price, market=market
    )


def _order_by_client_id(account_ref: str, client_order_id: str) -> PaperOrder | None:
    return PaperOrder.objects.filter(account_ref=account_ref, client_order_id=client_order_id).first()


def paper_order_place(
    *,
    order: VenueOrderRequest,
    quote_of: QuoteOf,
    slippage_bps: Decimal,
    executes_at: datetime | None = None,
) -> VenueOrder:
    """Accept, fill, rest or reject ``order``; a repeat of its ``client_order_id`` answers with
    the first result and changes nothing.

    ``executes_at`` (the asynchronous answer mode): an accepted market order is kept
    ``pending`` and executes at the price of the moment ``paper_order_get`` finds it due.

    A repeat is told by the unique client id, not by a read before every order: the order is
    inserted with ``ON CONFLICT DO NOTHING`` (``INSERT OR IGNORE`` on SQLite), which writes
    nothing for a repeat, and the first order is read only then. An order that fills now is
    inserted already filled (one insert instead of an insert and an update). Adding to an
    open position (the common case) costs three statements and no savepoint: the position
    locked, the order inserted, and only when it was, the position moved; a repeat leaves the
    position as it found it. Opening a position keeps a savepoint around the position's
    creation and the order's insert, which undoes the creation when the insert is refused."""
    defer = executes_at is not None
    pair = paper_pair(order.symbol)
    market = pair.market if pair is not None else None
    reason = _rejection(order, market)
    if reason is not None and max(len(order.account_ref), len(order.client_order_id)) > MAX_REF_LENGTH:
        # Too long to store, so it cannot be looked up again either: answered, not kept.
        return VenueOrder(
            venue_order_id="",
            client_order_id=order.client_order_id,
            status=VenueOrderStatus.REJECTED,
            reject_reason=reason,
        )
    fill_price: Decimal | None = None
    size = Decimal(0)
    if reason is None:
        assert market is not None
        quote = quote_of(market.symbol)
        if quote is None:
            reason = "market_unavailable"
        else:
            fill_price, size = _execution(order, market, quote, slippage_bps)
            if size <= 0:
                fill_price, reason = None, "size_below_minimum"

    accepted = reason is None
    row = PaperOrder(
        account_ref=order.account_ref,
        client_order_id=order.client_order_id,
        symbol=str(order.symbol)[:32],
        side=str(order.side)[:8],
        type=str(order.type)[:8],
        status=(PaperOrder.Status.PENDING if defer and fill_price is not None else PaperOrder.Status.OPEN)
        if accepted
        else PaperOrder.Status.REJECTED,
        reject_reason=reason or "",
        # A rejection keeps what was sent where its column can hold it.
        collateral=order.collateral if accepted or _fits(order.collateral) else Decimal(0),
        leverage=order.leverage if accepted or _fits(order.leverage, LEVERAGE_PLACES) else Decimal(0),
        limit_price=order.price if accepted or _fits(order.price) else None,
        stop_loss=order.stop_loss if accepted or _fits(order.stop_loss) else None,
        take_profit=order.take_profit if accepted or _fits(order.take_profit) else None,
        size=size,
        executes_at=executes_at if defer and fill_price is not None else None,
    )
    if fill_price is None or defer:
        # Nothing moves: rejected, resting or pending, the order is its one row.
        return _to_venue_order(row if _insert_unless_repeat(row) else _first_result(row))
    # Outermost, this is the transaction the row lock needs; in the caller's transaction it adds
    # no savepoint: nothing in it is expected to fail, a repeat included.
    with transaction.atomic(savepoint=False):
        position = _open_position_for_update(row.account_ref, row.symbol, Side(row.side))
        if position is not None:
            _position_grow(position, size=row.size, price=fill_price, collateral=row.collateral)
            _filled(row, fill_price, position)
            if not _insert_unless_repeat(row):
                # The position's move stays in memory, unsaved: the first result stands.
                return _to_venue_order(_first_result(row))
            position.save(update_fields=_GROWN_FIELDS)
            return _to_venue_order(row)
        try:
            with transaction.atomic():
                _filled(
                    row,
                    fill_price,
                    _position_open(
                        account_ref=row.account_ref,
                        symbol=row.symbol,
                        side=Side(row.side),
                        size=row.size,
                        price=fill_price,
                        collateral=row.collateral,
                    ),
                )
                row.save(force_insert=True)
        except IntegrityError:
            # A repeat of the client id (sent again, or at the same time from another request):
            # the savepoint undid the position's opening; the first result stands.
            return _to_venue_order(_first_result(row))
    return _to_venue_order(row)


def _insert_unless_repeat(row: PaperOrder) -> bool:
    """Insert the new ``row`` unless its client id is taken (a repeat, sent again or at the same
    time by another request: then nothing is written). One statement that a repeat does not
    fail, so no savepoint is needed around it; it waits for a concurrent insert of the same
    client id to commit or roll back. Returns whether the row was inserted."""
    meta = PaperOrder._meta
    query = InsertQuery(PaperOrder, on_conflict=OnConflict.IGNORE)
    query.insert_values([field for field in meta.local_concrete_fields if not field.generated], [row])
    using = router.db_for_write(PaperOrder, instance=row)
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [meta.pk]  # a row comes back only when one was inserted
    [(sql, params)] = compiler.as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        inserted = cursor.fetchone() is not None
    if inserted:
        row._state.adding = False
        row._state.db = using
    return inserted


def _first_result(row: PaperOrder) -> PaperOrder:
    """The order that took ``row``'s client id first (committed: a repeat waited for it)."""
    first = _order_by_client_id(row.account_ref, row.client_order_id)
    if first is None:
        raise IntegrityError(f"paper order {row.client_order_id!r} was refused but is not there")
    return first


def _filled(order: PaperOrder, price: Decimal, position: PaperPosition) -> None:
    """Mark ``order`` filled at ``price`` into ``position`` (in memory; the caller writes it)."""
    order.status = PaperOrder.Status.FILLED
    order.filled_size = order.size
    order.avg_fill_price = price
    order.position = position
    order.filled_at = timezone.now()


def _fill(order: PaperOrder, price: Decimal) -> None:
    """Fill the locked ``order`` at ``price`` into its position."""
    position = _position_add(
        account_ref=order.account_ref,
        symbol=order.symbol,
        side=Side(order.side),
        size=order.size,
        price=price,
        collateral=order.collateral,
    )
    _filled(order, price, position)
    order.save(
        update_fields=["status", "filled_size", "avg_fill_price", "position", "filled_at", "updated_at"]
    )


_open_position_locked = RowSelect(
    PaperPosition,
    '"account_ref" = %s AND "symbol" = %s AND "side" = %s AND "status" = %s',
    ("account_ref", "symbol", "side", "status"),
    order_by='"id"',
    limit=1,
    lock=Lock.UPDATE,
)


def _open_position_for_update(account_ref: str, symbol: str, side: Side) -> PaperPosition | None:
    return _open_position_locked.first(account_ref, symbol, side, PaperPosition.Status.OPEN)


def _position_add(
    *, account_ref: str, symbol: str, side: Side, size: Decimal, price: Decimal, collateral: Decimal
) -> PaperPosition:
    """Add a fill to the open position of its side, opening it if there is none."""
    position = _open_position_for_update(account_ref, symbol, side)
    if position is None:
        return _position_open(
            account_ref=account_ref, symbol=symbol, side=side, size=size, price=price, collateral=collateral
        )
    _position_grow(position, size=size, price=price, collateral=collateral)
    row_update(position, _GROWN_FIELDS)
    return position


def _position_open(
    *, account_ref: str, symbol: str, side: Side, size: Decimal, price: Decimal, collateral: Decimal
) -> PaperPosition:
    """Open the position of a fill when none was open on its side; if another fill opened it
    meanwhile, add to that one instead."""
    try:
        with transaction.atomic():
            return PaperPosition.objects.create(
                account_ref=account_ref,
                symbol=symbol,
                side=side,
                size=size,
                entry_price=price,
                collateral=collateral,
                leverage=_leverage(size=size, price=price, collateral=collateral),
            )
    except IntegrityError:
        # Another fill opened it first (one open position per side): add to that one.
        position = _open_position_for_update(account_ref, symbol, side)
        if position is None:
            raise
    _position_grow(position, size=size, price=price, collateral=collateral)
    position.save(update_fields=_GROWN_FIELDS)
    return position


_GROWN_FIELDS = ["entry_price", "size", "collateral", "leverage", "updated_at"]


def _position_grow(position: PaperPosition, *, size: Decimal, price: Decimal, collateral: Decimal) -> None:
    """Add ``size`` bought at ``price`` with ``collateral`` to the locked ``position``, in memory
    (the caller saves ``_GROWN_FIELDS``): the entry averages by size, to the pair's tick and
    ``ENTRY_EXTRA_DIGITS`` more, and the leverage follows."""
    pair = paper_pair(position.symbol)
    assert pair is not None
    new_size = position.size + size
    grain = pair.market.tick_size.scaleb(-ENTRY_EXTRA_DIGITS)
    position.entry_price = round_to_step(
        (position.size * position.entry_price + size * price) / new_size, grain, ROUND_HALF_EVEN
    )
    position.size = new_size
    position.collateral += collateral
    position.leverage = _leverage(size=new_size, price=position.entry_price, collateral=position.collateral)


def _leverage(*, size: Decimal, price: Decimal, collateral: Decimal) -> Decimal:
    """The effective leverage: notional at entry over collateral."""
    return round_to_step(size * price / collateral, LEVERAGE_STEP, ROUND_HALF_EVEN)


def paper_match_resting_orders(*, symbol: str, bid: Decimal, ask: Decimal) -> list[VenueOrder]:
    """Fill every resting limit order of ``symbol`` that this tick crosses, at its limit price.

    A long limit fills when the ask is at or below it, a short limit when the bid is at or
    above it. Meant for every tick: a tick that crosses nothing costs one query on the
    partial index of open orders. Each fill is its own transaction; an order that another
    tick filled or a trader cancelled meanwhile is skipped. Returns the orders filled now.
    """
    crossed = list(
        PaperOrder.objects.filter(symbol=symbol, status=PaperOrder.Status.OPEN)
        .filter(Q(side=Side.LONG, limit_price__gte=ask) | Q(side=Side.SHORT, limit_price__lte=bid))
        .order_by("created_at")
        .values_list("pk", flat=True)
    )
    filled: list[VenueOrder] = []
    for pk in crossed:
        with transaction.atomic():
            order = (
                PaperOrder.objects.select_for_update().filter(pk=pk, status=PaperOrder.Status.OPEN).first()
            )
            if order is None:
                continue
            assert order.limit_price is not None
            _fill(order, order.limit_price)
            filled.append(_to_venue_order(order))
    return filled


def _order_for_update(account_ref: str, venue_order_id: str) -> PaperOrder:
    try:
        order_pk = uuid.UUID(venue_order_id)
    except ValueError:
        order_pk = None
    order = (
        PaperOrder.objects.select_for_update().filter(pk=order_pk, account_ref=account_ref).first()
        if order_pk is not None
        else None
    )
    if order is None:
        raise ProviderError("paper", f"no order {venue_order_id} for this account", status_code=404)
    return order


@transaction.atomic
def paper_order_cancel(*, account_ref: str, venue_order_id: str) -> VenueOrder:
    """Cancel a resting or pending (not yet executed) order; an order already filled, cancelled or
    rejected is returned as it is.

    Raises ProviderError (404) when the account has no such order.
    """
    order = _order_for_update(account_ref, venue_order_id)
    if order.status in (PaperOrder.Status.OPEN, PaperOrder.Status.PENDING):
        order.status = PaperOrder.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
    return _to_venue_order(order)


@transaction.atomic
def paper_order_get(
    *,
    account_ref: str,
    client_order_id: str,
    quote_of: QuoteOf | None = None,
    slippage_bps: Decimal = Decimal(0),
    now: datetime | None = None,
) -> VenueOrder | None:
    """The order with our ``client_order_id``. A ``pending`` one due by ``now`` executes first
    (the asynchronous answer mode: the venue works on it between our calls)."""
    order = (
        PaperOrder.objects.select_for_update()
        .filter(account_ref=account_ref, client_order_id=client_order_id)
        .first()
    )
    if order is None:
        return None
    if (
        order.status == PaperOrder.Status.PENDING
        and quote_of is not None
        and now is not None
        and (order.executes_at is None or order.executes_at <= now)
    ):
        _pending_execute(order, quote_of=quote_of, slippage_bps=slippage_bps)
    return _to_venue_order(order)


def _pending_execute(order: PaperOrder, *, quote_of: QuoteOf, slippage_bps: Decimal) -> None:
    """Execute a locked ``pending`` order at the market now: an opening fills into its position,
    a close reduces its position; what cannot execute now is rejected with its reason."""
    pair = paper_pair(order.symbol)
    quote = quote_of(order.symbol) if pair is not None else None
    if pair is None or quote is None:
        _reject(order, "market_unavailable")
        return
    market = pair.market
    price = market_fill_price(
        quote=quote,
        side=Side(order.side),
        opening=not order.reduces_position,
        slippage_bps=slippage_bps,
        tick=market.tick_size,
    )
    if not order.reduces_position:
        order.size = _order_size(
            collateral=order.collateral, leverage=order.leverage, price=price, market=market
        )
        if order.size <= 0:
            _reject(order, "size_below_minimum")
            return
        order.save(update_fields=["size", "updated_at"])
        _fill(order, price)
        return
    position = (
        PaperPosition.objects.select_for_update()
        .filter(pk=order.position_id, status=PaperPosition.Status.OPEN)
        .first()
        if order.position_id is not None
        else None
    )
    if position is None:
        _reject(order, "position_not_found")
        return
    closing = min(order.size, position.size)
    released = _position_reduce(position, closing=closing, price=price)
    order.status = PaperOrder.Status.FILLED
    order.collateral = released
    order.size = closing
    order.filled_size = closing
    order.avg_fill_price = price
    order.filled_at = timezone.now()
    order.save(
        update_fields=[
            "status",
            "collateral",
            "size",
            "filled_size",
            "avg_fill_price",
            "filled_at",
            "updated_at",
        ]
    )


def _reject(order: PaperOrder, reason: str) -> None:
    order.status = PaperOrder.Status.REJECTED
    order.reject_reason = reason
    order.save(update_fields=["status", "reject_reason", "updated_at"])


def paper_orders_open(*, account_ref: str) -> list[VenueOrder]:
    """The account's resting limit orders, oldest first."""
    orders = PaperOrder.objects.filter(account_ref=account_ref, status=PaperOrder.Status.OPEN)
    return [_to_venue_order(order) for order in orders.order_by("created_at")]


def paper_positions_open(*, account_ref: str) -> list[VenuePosition]:
    positions = PaperPosition.objects.filter(account_ref=account_ref, status=PaperPosition.Status.OPEN)
    return [_to_venue_position(p) for p in positions.order_by("created_at")]


def _close_rejected(reason: str) -> VenueOrder:
    return VenueOrder(
        venue_order_id="", client_order_id="", status=VenueOrderStatus.REJECTED, reject_reason=reason
    )


def _position_reduce(position: PaperPosition, *, closing: Decimal, price: Decimal) -> Decimal:
    """Take ``closing`` off the locked ``position`` at ``price``: book the P&L, release the
    collateral in proportion (all of it when closed in full). Returns the collateral released."""
    side = Side(position.side)
    pnl_per_unit = price - position.entry_price if side == Side.LONG else position.entry_price - price
    pnl = round_to_step(pnl_per_unit * closing, USDC_STEP, ROUND_HALF_EVEN)
    full = closing >= position.size
    released = (
        position.collateral
        if full
        else round_to_step(position.collateral * closing / position.size, USDC_STEP, ROUND_DOWN)
    )
    position.size -= closing
    position.collateral -= released
    position.realized_pnl += pnl
    fields = ["size", "collateral", "realized_pnl", "updated_at"]
    if full:
        position.status = PaperPosition.Status.CLOSED
        position.closed_at = timezone.now()
        fields += ["status", "closed_at"]
    position.save(update_fields=fields)
    return released


@transaction.atomic
def paper_position_close(  # noqa: PLR0911 - one return per refusal
    *,
    account_ref: str,
    venue_position_id: str,
    size: Decimal | None,
    quote_of: QuoteOf,
    slippage_bps: Decimal,
    client_order_id: str = "",
    executes_at: datetime | None = None,
) -> VenueOrder:
    """Close ``size`` of the position (all of it when None or when ``size`` covers it) at market.

    Collateral is released in proportion to the size closed and the realised P&L is booked on
    the position; the close is recorded as a filled order that reduces the position, under
    ``client_order_id`` when given (a repeat answers with the first close) or ``close-<uuid>``.
    ``executes_at``: the close is kept ``pending`` and executes when ``paper_order_get`` finds
    it due.
    """
    if client_order_id:
        existing = _order_by_client_id(account_ref, client_order_id)
        if existing is not None:
            return _to_venue_order(existing)
    try:
        position_pk = uuid.UUID(venue_position_id)
    except ValueError:
        return _close_rejected("position_not_found")
    position = (
        PaperPosition.objects.select_for_update()
        .filter(pk=position_pk, account_ref=account_ref, status=PaperPosition.Status.OPEN)
        .first()
    )
    pair = paper_pair(position.symbol) if position is not None else None
    if position is None or pair is None:
        return _close_rejected("position_not_found")
    market = pair.market
    if size is not None:
        if not size.is_finite() or size <= 0:
            return _close_rejected("invalid_size")
        size = round_to_step(min(size, position.size), market.size_step, ROUND_DOWN)
        if size <= 0:
            return _close_rejected("size_below_minimum")
    closing = position.size if size is None else size
    row = PaperOrder(
        account_ref=account_ref,
        client_order_id=client_order_id or f"close-{uuid.uuid4().hex}",
        symbol=position.symbol,
        side=position.side,
        type=OrderType.MARKET,
        reduces_position=True,
        status=PaperOrder.Status.PENDING,
        collateral=Decimal(0),
        leverage=position.leverage,
        size=closing,
        position=position,
        executes_at=executes_at,
    )
    if executes_at is not None:
        row.save(force_insert=True)
        return _to_venue_order(row)
    quote = quote_of(position.symbol)
    if quote is None:
        return _close_rejected("market_unavailable")
    price = market_fill_price(
        quote=quote, side=Side(position.side), opening=False, slippage_bps=slippage_bps, tick=market.tick_size
    )
    row.collateral = _position_reduce(position, closing=closing, price=price)
    row.status = PaperOrder.Status.FILLED
    row.filled_size = closing
    row.avg_fill_price = price
    row.filled_at = timezone.now()
    row.save(force_insert=True)
    return _to_venue_order(row)
