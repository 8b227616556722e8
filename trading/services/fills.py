"""Fills: what happens here when a venue has executed an order, and how it is settled.

An opening fill opens or increases the position, charges the opening fee from the locked
margin and arms the stops. A closing fill releases the share of collateral, pays the P&L and
charges the closing fee in one ledger transaction, and when the position is gone cancels its
stops and resting closes. An order becomes ``filled`` here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from ledger.models import LedgerAccount, TransactionKind
from ledger.services import (
    TradingAccounts,
    ledger_accounts_for_user,
    ledger_transaction_post,
    platform_account,
)
from marqetfi.core.events import publish, publish_many
from marqetfi.core.rows import row_insert, row_update
from pricing.models import PairListing
from providers import registry
from providers.base import VenueOrder
from providers.errors import ProviderError
from trading import terms
from trading.errors import PositionNotOpen
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.presenters import fill_data, order_data, position_data
from trading.services.protection import (
    protection_apply,
    protection_from_order,
    protective_armed,
    protective_cancel,
    protective_native_resize,
    risk_triggers_arm,
)
from trading.services.risk import RiskProfile, risk_profile_get
from trading.services.venues import venue_account_ref
from trading.services.wallet_trades import native_protection_kinds
from trading.triggers.index import order_unindex


def _order_filled(order: Order, *, size: Decimal, price: Decimal, fee: Decimal, venue_order_id: str) -> None:
    """The order's one transition to ``filled`` (its row is locked by the caller)."""
    order.status = Order.Status.FILLED
    order.filled_size = size
    order.avg_fill_price = price
    order.fee = fee
    order.venue_order_id = venue_order_id
    order.resource_version += 1
    row_update(
        order,
        [
            "status",
            "provider",
            "routing",
            "filled_size",
            "avg_fill_price",
            "fee",
            "position",
            "venue_order_id",
            "resource_version",
            "updated_at",
        ],
    )


# --- opening ---------------------------------------------------------------------------------


def _risk_levels(order: Order, risk: RiskProfile | None) -> tuple[Decimal, Decimal]:
    """The liquidation and margin-call levels a new position on this order's market starts with:
    those of ``risk`` (the profile the order was checked against) when the caller has it."""
    if risk is not None:
        return risk.liquidation_level, risk.margin_call_level
    listing = PairListing.objects.filter(pair__symbol=order.symbol, provider=order.provider).first()
    risk = risk_profile_get(
        user=order.user,
        symbol=order.symbol,
        category=order.category,
        venue_max_leverage=listing.max_leverage if listing else order.leverage,
    )
    return risk.liquidation_level, risk.margin_call_level


def _venue_position_id(order: Order) -> str:
    """The venue's id of the position this order's fill went into ("" if the venue does not say)."""
    try:
        positions = registry.venue(order.provider).positions(
            account_ref=venue_account_ref(user=order.user, provider=order.provider)
        )
    except ProviderError:
        return ""
    match = next((p for p in positions if p.symbol == order.symbol and p.side == order.side), None)
    return match.venue_position_id if match else ""


def _position_for_fill(order: Order, risk: RiskProfile | None) -> tuple[Position, bool]:
    """The user's open position on this market, locked, or a new one (race-safe)."""
    for _ in range(2):
        existing = (
            Position.objects.select_for_update(no_key=True)
            .filter(
                user_id=order.user_id,
                symbol=order.symbol,
                side=order.side,
                provider=order.provider,
                status__in=Position.LIVE,
            )
            .first()
        )
        if existing is not None:
            return existing, False
        liquidation_level, margin_call_level = _risk_levels(order, risk)
        try:
            with transaction.atomic():
                return (
                    Position.objects.create(
                        user_id=order.user_id,
                        symbol=order.symbol,
                        category=order.category,
                        side=order.side,
                        provider=order.provider,
                        account_ref=venue_account_ref(user=order.user, provider=order.provider),
                        size=Decimal(0),
                        entry_price=Decimal(0),
                        collateral=Decimal(0),
                        leverage=order.leverage,
                        liquidation_level=liquidation_level,
                        margin_call_level=margin_call_level,
                    ),
                    True,
                )
        except IntegrityError:
            continue
    raise PositionNotOpen(details={"reason": "position changed concurrently"})


def _reprice(position: Position) -> None:
    position.liquidation_price = terms.loss_price(
        side=position.side,
        entry=position.entry_price,
        size=position.size,
        collateral=position.collateral,
        level=position.liquidation_level,
    )


@dataclass(frozen=True)
class LockedForFill:
    """Rows the caller's transaction locked before sending the order, which its fill posts to:
    the trader's accounts with their fees shard, and their live position on the market if
    there was one (``None``: the fill finds or opens it)."""

    accounts: TradingAccounts
    position: Position | None


def order_fill_open(
    *,
    order: Order,
    venue_order: VenueOrder,
    risk: RiskProfile | None = None,
    locked: LockedForFill | None = None,
) -> Position:
    """Record the fill of an opening order (the order row is locked by the caller): the fill, the
    position opened or increased, the fee charged from the locked margin, the stops armed.
    ``risk``: the profile the order was checked against, if the caller has it (not read again);
    ``locked``: the rows the caller locked already (not read again)."""
    size = venue_order.filled_size
    price = venue_order.avg_fill_price
    assert price is not None and size > 0
    held = locked.position if locked is not None else None
    if held is not None and held.provider == order.provider and held.status in Position.LIVE:
        position, created = held, False
    else:
        position, created = _position_for_fill(order, risk)
    notional = size * price
    total_size = position.size + size
    position.entry_price = ((position.size * position.entry_price + notional) / total_size).quantize(
        terms.PRICE_STEP
    ).normalize() + 0
    position.size = total_size
    position.collateral += order.collateral
    position.leverage = (position.size * position.entry_price / position.collateral).quantize(
        Decimal("0.01"), ROUND_HALF_EVEN
    )
    position.fees_paid += order.fee_reserved
    if not position.venue_position_id:  # asked once per position, not on every fill
        position.venue_position_id = _venue_position_id(order)
    _reprice(position)
    if not created:
        position.resource_version += 1
    row_update(
        position,
        [
            "entry_price",
            "size",
            "collateral",
            "leverage",
            "fees_paid",
            "venue_position_id",
            "liquidation_price",
            "resource_version",
            "updated_at",
        ],
    )
    if order.fee_reserved:
        if locked is not None:
            margin, fees = locked.accounts.margin, locked.accounts.fees
        else:
            margin = ledger_accounts_for_user(user=order.user).margin
            fees = platform_account(kind=LedgerAccount.Kind.FEES, shard_of=order.user_id)
        ledger_transaction_post(
            kind=TransactionKind.FEE,
            legs=[(margin, -order.fee_reserved), (fees, order.fee_reserved)],
            reference=f"order:{order.pk}",
            memo=f"opening fee {order.symbol}",
            # Locked by the caller, with the balances its collateral lock left: not locked again.
            locked=locked.accounts.by_pk() if locked is not None else None,
        )
    fill = row_insert(
        Fill(
            user_id=order.user_id,
            order=order,
            position=position,
            kind=Fill.Kind.OPEN,
            symbol=order.symbol,
            side=order.side,
            provider=order.provider,
            size=size,
            price=price,
            fee=order.fee_reserved,
        )
    )
    order.position = position
    _order_filled(
        order, size=size, price=price, fee=order.fee_reserved, venue_order_id=venue_order.venue_order_id
    )
    protection = protection_from_order(order)
    if protection is not None:
        protection_apply(
            position=position,
            protection=protection,
            reference_price=price,
            native_kinds=native_protection_kinds(order.provider),
        )
    # A new position has no margin call or liquidation armed yet: nothing to read.
    armed = {} if created else protective_armed(position)
    # The stops the position shows: those just read, unless resized at the venue since (or new).
    stops: list[ProtectiveOrder] | None = None
    if not created:
        placed_now = frozenset(
            kind
            for kind, asked in (("stop_loss", order.stop_loss), ("take_profit", order.take_profit))
            if asked is not None
        )
        if not protective_native_resize(position=position, keep=placed_now, armed=armed):
            stops = list(armed.values())
    risk_triggers_arm(position, armed=armed)
    publish_many(
        user_id=order.user_id,
        events=[
            ("order.filled", order_data(order)),
            ("trade.executed", fill_data(fill)),
            ("position.opened" if created else "position.updated", position_data(position, armed=stops)),
        ],
    )
    return position


# --- closing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    collateral_released: Decimal
    pnl: Decimal
    fee: Decimal
    payout: Decimal


def _settle(*, position: Position, size: Decimal, price: Decimal, kind: str, reference: str) -> Settlement:
    """Release the share of collateral, pay the P&L and charge the closing fee, in one ledger
    transaction. A loss beyond the collateral is the venue's (the user never goes negative)."""
    full = size >= position.size
    released = position.collateral if full else terms.usdc(position.collateral * size / position.size)
    pnl = terms.pnl(side=position.side, entry=position.entry_price, exit_price=price, size=size)
    gross = released + pnl
    accounts = ledger_accounts_for_user(user=position.user)
    if gross <= 0:
        fee, payout = Decimal(0), Decimal(0)
        legs = [
            (accounts.margin, -released),
            (platform_account(kind=LedgerAccount.Kind.REALIZED_PNL, shard_of=position.user_id), released),
        ]
    else:
        fee = min(terms.fee_for(size * price), gross)
        payout = gross - fee
        legs = [(accounts.margin, -released), (accounts.available, payout)]
        if fee:
            legs.append((platform_account(kind=LedgerAccount.Kind.FEES, shard_of=position.user_id), fee))
        if pnl:
            legs.append(
                (platform_account(kind=LedgerAccount.Kind.REALIZED_PNL, shard_of=position.user_id), -pnl)
            )
    legs = [(account, amount) for account, amount in legs if amount]
    if legs:
        ledger_transaction_post(kind=kind, legs=legs, reference=reference, memo=f"{kind} {position.symbol}")
    realized = pnl if gross > 0 else -released
    return Settlement(collateral_released=released, pnl=realized, fee=fee, payout=payout)


def close_fill_record(
    *,
    position: Position,
    order: Order | None,
    size: Decimal,
    price: Decimal,
    kind: str,
    venue_order_id: str = "",
) -> Fill:
    """Settle ``size`` of a locked position closed at ``price``; cancel its stops when it is gone."""
    reference = f"order:{order.pk}" if order else f"position:{position.pk}"
    settlement = _settle(
        position=position,
        size=size,
        price=price,
        kind=TransactionKind.LIQUIDATION
        if kind == Fill.Kind.LIQUIDATION
        else TransactionKind.POSITION_SETTLE,
        reference=reference,
    )
    full = size >= position.size
    position.size -= size
    position.collateral -= settlement.collateral_released
    position.realized_pnl += settlement.pnl
    position.fees_paid += settlement.fee
    position.resource_version += 1
    if full:
        position.size = Decimal(0)
        position.collateral = Decimal(0)
        position.status = (
            Position.Status.LIQUIDATED if kind == Fill.Kind.LIQUIDATION else Position.Status.CLOSED
        )
        position.closed_at = timezone.now()
        for protective in protective_armed(position).values():
            protective_cancel(protective)
        _cancel_resting_closes(position)
    else:
        _reprice(position)
        risk_triggers_arm(position)
    position.save(
        update_fields=[
            "size",
            "collateral",
            "realized_pnl",
            "fees_paid",
            "resource_version",
            "status",
            "closed_at",
            "liquidation_price",
            "updated_at",
        ]
    )
    fill = Fill.objects.create(
        user_id=position.user_id,
        order=order,
        position=position,
        kind=kind,
        symbol=position.symbol,
        side=position.side,
        provider=position.provider,
        size=size,
        price=price,
        fee=settlement.fee,
        realized_pnl=settlement.pnl,
    )
    if order is not None:
        _order_filled(order, size=size, price=price, fee=settlement.fee, venue_order_id=venue_order_id)
        publish(user_id=position.user_id, type="order.filled", data=order_data(order))
    publish(user_id=position.user_id, type="trade.executed", data=fill_data(fill))
    publish(
        user_id=position.user_id,
        type="position.closed" if full else "position.updated",
        data=position_data(position),
    )
    return fill


def _cancel_resting_closes(position: Position) -> None:
    """The position is gone: its resting limit closes have nothing left to close."""
    for order in Order.objects.select_for_update(no_key=True).filter(
        position=position, purpose=Order.Purpose.CLOSE, status=Order.Status.OPEN
    ):
        order.status = Order.Status.CANCELLED
        order.resource_version += 1
        order.save(update_fields=["status", "resource_version", "updated_at"])
        publish(user_id=order.user_id, type="order.cancelled", data=order_data(order))
        transaction.on_commit(partial(order_unindex, order.pk))
