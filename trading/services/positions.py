"""Positions: opened or increased by fills, protected by SL / TP / trailing stops, closed in
full or in part (by the trader, a trigger or a liquidation), every cent settled in the ledger.

Locks: a position row is locked (``position_lock``) before anything about it changes, and
held across the venue call that closes it, so a manual close racing a trigger, or two
triggers, have exactly one effect: the second finds the position closed (or smaller).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from ledger.services import ledger_accounts_for_user, ledger_transaction_post, platform_account
from marqetfi.core.errors import ApplicationError
from marqetfi.core.events import publish
from pricing.services.prices import price_get
from providers import registry
from providers.base import VenueOrder
from providers.breaker import call_provider
from providers.errors import ProviderError
from trading import terms
from trading.errors import (
    InvalidStopSide,
    InvalidTrailingStop,
    PositionNotFound,
    PositionNotOpen,
    SizeOffStep,
    StopBeyondLiquidation,
    VenueError,
)
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.presenters import fill_data, order_data, position_data

MAX_TRAIL_PERCENT = Decimal(50)


@dataclass(frozen=True)
class Protection:
    """Stops asked for with an order or a position change. ``clear_*``: remove what is armed."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_distance: Decimal | None = None
    clear_stop_loss: bool = False
    clear_take_profit: bool = False
    clear_trailing_stop: bool = False

    @property
    def trailing(self) -> bool:
        return self.trail_percent is not None or self.trail_distance is not None


def _venue_failure(error: ProviderError) -> VenueError:
    return VenueError(details={"provider": error.provider, "reason": error.message})


# --- locks and reads ----------------------------------------------------------------------


def position_lock(*, position_id: Any, user: Any = None) -> Position:
    """The position row, locked until the transaction ends; ``PositionNotFound`` if not the user's."""
    positions = Position.objects.select_for_update(no_key=True)
    if user is not None:
        positions = positions.filter(user=user)
    try:
        return positions.get(pk=position_id)
    except (Position.DoesNotExist, ValueError, TypeError):
        raise PositionNotFound(details={"position_id": str(position_id)}) from None


def venue_account_ref(*, user: User, provider: str) -> str:
    """The account ``user`` trades from at the venue ``provider``, as the venue maps it (the
    wallets are read only by a venue that trades from the user's own wallet)."""
    wallets = user.wallets.order_by("created_at").values_list("address", flat=True)
    return registry.venue(provider).account_ref(user_id=str(user.pk), wallet_addresses=wallets)


# --- protective orders ----------------------------------------------------------------------


def protection_check(
    *, side: str, entry: Decimal, liquidation: Decimal | None, protection: Protection
) -> None:
    """Stops on the wrong side of the entry, or beyond the liquidation price, are refused."""
    if protection.stop_loss is not None:
        if not terms.stop_is_protective(side=side, entry=entry, stop=protection.stop_loss):
            raise InvalidStopSide(details={"field": "stop_loss", "entry_price": str(entry)})
        if not terms.stop_before_liquidation(side=side, stop=protection.stop_loss, liquidation=liquidation):
            raise StopBeyondLiquidation(details={"field": "stop_loss", "liquidation_price": str(liquidation)})
    if protection.take_profit is not None and not terms.target_is_profitable(
        side=side, entry=entry, target=protection.take_profit
    ):
        raise InvalidStopSide(details={"field": "take_profit", "entry_price": str(entry)})
    if protection.trailing:
        percent, distance = protection.trail_percent, protection.trail_distance
        if (percent is not None and not (0 < percent <= MAX_TRAIL_PERCENT)) or (
            distance is not None and not (0 < distance < entry)
        ):
            raise InvalidTrailingStop(details={"percent": str(percent), "distance": str(distance)})
        stop = terms.trailing_stop_price(side=side, best=entry, percent=percent, distance=distance)
        if not terms.stop_before_liquidation(side=side, stop=stop, liquidation=liquidation):
            raise StopBeyondLiquidation(
                details={"field": "trailing_stop", "stop": str(stop), "liquidation_price": str(liquidation)}
            )


def _armed(position: Position) -> dict[str, ProtectiveOrder]:
    return {
        p.kind: p
        for p in ProtectiveOrder.objects.select_for_update(no_key=True).filter(
            position=position, status=ProtectiveOrder.Status.ARMED
        )
    }


def _cancel_protective(protective: ProtectiveOrder) -> None:
    protective.status = ProtectiveOrder.Status.CANCELLED
    protective.save(update_fields=["status", "updated_at"])
    _after_commit_disarm(protective.pk)


def _arm(position: Position, kind: str, **fields: Any) -> ProtectiveOrder:
    protective = ProtectiveOrder.objects.create(
        user_id=position.user_id,
        position=position,
        symbol=position.symbol,
        side=position.side,
        kind=kind,
        **fields,
    )
    _after_commit_arm(protective.pk)
    return protective


def protection_apply(*, position: Position, protection: Protection, reference_price: Decimal) -> None:
    """Replace the position's stops by those asked for (the position is locked by the caller).

    Stop-loss (or, in its place, the trailing stop) and take-profit share one OCO group.
    """
    armed = {kind: p for kind, p in _armed(position).items() if kind in ProtectiveOrder.TRADER_KINDS}
    wanted: dict[str, dict[str, Any]] = {}
    if protection.stop_loss is not None:
        wanted[ProtectiveOrder.Kind.STOP_LOSS] = {"trigger_price": protection.stop_loss}
    if protection.take_profit is not None:
        wanted[ProtectiveOrder.Kind.TAKE_PROFIT] = {"trigger_price": protection.take_profit}
    if protection.trailing:
        best = reference_price
        wanted[ProtectiveOrder.Kind.TRAILING_STOP] = {
            "trigger_price": terms.trailing_stop_price(
                side=position.side,
                best=best,
                percent=protection.trail_percent,
                distance=protection.trail_distance,
            ),
            "trail_percent": protection.trail_percent,
            "trail_distance": protection.trail_distance,
            "best_price": best,
        }
    cleared: dict[str, bool] = {
        ProtectiveOrder.Kind.STOP_LOSS: protection.clear_stop_loss,
        ProtectiveOrder.Kind.TAKE_PROFIT: protection.clear_take_profit,
        ProtectiveOrder.Kind.TRAILING_STOP: protection.clear_trailing_stop,
    }
    for kind, protective in list(armed.items()):
        if kind in wanted or cleared[kind]:
            _cancel_protective(protective)
            del armed[kind]
    if not wanted:
        return
    group = next((p.oco_group for p in armed.values() if p.oco_group), None) or uuid.uuid4()
    for kind, fields in wanted.items():
        armed[kind] = _arm(position, kind, oco_group=group, **fields)
    for protective in armed.values():
        if protective.oco_group != group:
            protective.oco_group = group
            protective.save(update_fields=["oco_group", "updated_at"])


def _after_commit_arm(protective_id: Any) -> None:
    from trading import triggers

    transaction.on_commit(lambda: triggers.protective_index(protective_id))


def _after_commit_disarm(protective_id: Any) -> None:
    from trading import triggers

    transaction.on_commit(lambda: triggers.protective_unindex(protective_id))


# --- opening ---------------------------------------------------------------------------------


def _risk_levels(order: Order) -> tuple[Decimal, Decimal]:
    """The liquidation and margin-call levels a new position on this order's market starts with."""
    from pricing.models import PairListing
    from trading.services.risk import risk_profile_get

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


def _position_for_fill(order: Order) -> tuple[Position, bool]:
    """The user's open position on this market, locked, or a new one (race-safe)."""
    for _ in range(2):
        existing = (
            Position.objects.select_for_update(no_key=True)
            .filter(
                user_id=order.user_id,
                symbol=order.symbol,
                side=order.side,
                provider=order.provider,
                status=Position.Status.OPEN,
            )
            .first()
        )
        if existing is not None:
            return existing, False
        liquidation_level, margin_call_level = _risk_levels(order)
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


def order_fill_open(*, order: Order, venue_order: VenueOrder) -> Position:
    """Record the fill of an opening order (the order row is locked by the caller): the fill, the
    position opened or increased, the fee charged from the locked margin, the stops armed."""
    size = venue_order.filled_size
    price = venue_order.avg_fill_price
    assert price is not None and size > 0
    position, created = _position_for_fill(order)
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
    position.save()
    accounts = ledger_accounts_for_user(user=order.user)
    if order.fee_reserved:
        ledger_transaction_post(
            kind="fee",
            legs=[
                (accounts.margin, -order.fee_reserved),
                (platform_account(kind="fees"), order.fee_reserved),
            ],
            reference=f"order:{order.pk}",
            memo=f"opening fee {order.symbol}",
        )
    fill = Fill.objects.create(
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
    order.status = Order.Status.FILLED
    order.filled_size = size
    order.avg_fill_price = price
    order.fee = order.fee_reserved
    order.position = position
    order.venue_order_id = venue_order.venue_order_id
    order.resource_version += 1
    order.save()
    protection = protection_from_order(order)
    if protection is not None:
        protection_apply(position=position, protection=protection, reference_price=price)
    risk_triggers_arm(position)
    publish(user_id=order.user_id, type="order.filled", data=order_data(order))
    publish(user_id=order.user_id, type="trade.executed", data=fill_data(fill))
    publish(
        user_id=order.user_id,
        type="position.opened" if created else "position.updated",
        data=position_data(position),
    )
    return position


def protection_from_order(order: Order) -> Protection | None:
    trailing = order.trailing_stop or {}
    if order.stop_loss is None and order.take_profit is None and not trailing:
        return None
    return Protection(
        stop_loss=order.stop_loss,
        take_profit=order.take_profit,
        trail_percent=Decimal(trailing["percent"]) if "percent" in trailing else None,
        trail_distance=Decimal(trailing["distance"]) if "distance" in trailing else None,
    )


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
        legs = [(accounts.margin, -released), (platform_account(kind="realized_pnl"), released)]
    else:
        fee = min(terms.fee_for(size * price), gross)
        payout = gross - fee
        legs = [(accounts.margin, -released), (accounts.available, payout)]
        if fee:
            legs.append((platform_account(kind="fees"), fee))
        if pnl:
            legs.append((platform_account(kind="realized_pnl"), -pnl))
    legs = [(account, amount) for account, amount in legs if amount]
    if legs:
        ledger_transaction_post(kind=kind, legs=legs, reference=reference, memo=f"{kind} {position.symbol}")
    realized = pnl if gross > 0 else -released
    return Settlement(collateral_released=released, pnl=realized, fee=fee, payout=payout)


def position_close(
    *,
    position_id: Any,
    user: Any = None,
    size: Decimal | None = None,
    rounding: str | None = None,
    closed_by: str = "trader",
    protective: ProtectiveOrder | None = None,
    resting_order: Order | None = None,
    fill_kind: str = Fill.Kind.CLOSE,
) -> Order | None:
    """Close a position at market, fully or ``size`` of it, through its venue; settle it.

    ``protective`` is the trigger firing (already marked fired by the caller in this
    transaction); ``resting_order`` a limit close whose price was reached, which becomes the
    close order. Returns the close order, or None when either finds the position closed.
    """
    with transaction.atomic():
        position = position_lock(position_id=position_id, user=user)
        if position.status != Position.Status.OPEN:
            if protective is not None or resting_order is not None:
                return None
            raise PositionNotOpen(details={"position_id": str(position.pk), "status": position.status})
        size = _close_size(position, size, rounding)
        order = resting_order or Order.objects.create(
            user_id=position.user_id,
            symbol=position.symbol,
            category=position.category,
            side=position.side,
            type=Order.Type.MARKET,
            purpose=Order.Purpose.CLOSE,
            size=size,
            provider=position.provider,
            position=position,
            closed_by=closed_by,
            routing={"reason": "the position's venue", "attempts": []},
        )
        try:
            venue_order = call_provider(
                position.provider,
                registry.venue(position.provider).close_position,
                account_ref=position.account_ref,
                venue_position_id=position.venue_position_id,
                size=None if size >= position.size else size,
            )
        except ProviderError as exc:
            transaction.set_rollback(True)
            raise _venue_failure(exc) from exc
        if venue_order.avg_fill_price is None or venue_order.filled_size <= 0:
            transaction.set_rollback(True)
            raise _venue_failure(
                ProviderError(position.provider, venue_order.reject_reason or "close not filled")
            )
        close_fill_record(
            position=position,
            order=order,
            size=min(venue_order.filled_size, position.size),
            price=venue_order.avg_fill_price,
            kind=fill_kind,
            venue_order_id=venue_order.venue_order_id,
        )
        if protective is not None:
            protective.close_order = order
            protective.save(update_fields=["close_order", "updated_at"])
        return order


def _close_size(position: Position, size: Decimal | None, rounding: str | None) -> Decimal:
    if size is None or size >= position.size:
        return position.size
    step = _size_step(position)
    accepted = terms.to_step_if_asked(size, step, rounding)
    if accepted is None or accepted <= 0:
        raise SizeOffStep(details={"size": str(size), "size_step": str(step)})
    return min(accepted, position.size)


def _size_step(position: Position) -> Decimal:
    from pricing.models import PairListing

    listing = PairListing.objects.filter(pair__symbol=position.symbol, provider=position.provider).first()
    return listing.size_step if listing is not None else Decimal(0)


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
        kind="liquidation" if kind == Fill.Kind.LIQUIDATION else "position_settle",
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
        for protective in _armed(position).values():
            _cancel_protective(protective)
        _cancel_resting_closes(position)
    else:
        _reprice(position)
        risk_triggers_arm(position)
    position.save()
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
        order.status = Order.Status.FILLED
        order.filled_size = size
        order.avg_fill_price = price
        order.fee = settlement.fee
        order.venue_order_id = venue_order_id
        order.resource_version += 1
        order.save()
        publish(user_id=position.user_id, type="order.filled", data=order_data(order))
    publish(user_id=position.user_id, type="trade.executed", data=fill_data(fill))
    publish(
        user_id=position.user_id,
        type="position.closed" if full else "position.updated",
        data=position_data(position),
    )
    return fill


def _cancel_resting_closes(position: Position) -> None:
    for order in Order.objects.select_for_update(no_key=True).filter(
        position=position, purpose=Order.Purpose.CLOSE, status=Order.Status.OPEN
    ):
        order.status = Order.Status.CANCELLED
        order.resource_version += 1
        order.save(update_fields=["status", "resource_version", "updated_at"])
        publish(user_id=order.user_id, type="order.cancelled", data=order_data(order))
        from trading import triggers

        transaction.on_commit(partial(triggers.order_unindex, order.pk))


def risk_triggers_arm(position: Position) -> None:
    """(Re-)arm the platform's margin call and liquidation at the position's current prices."""
    armed = _armed(position)
    for kind in ProtectiveOrder.RISK_KINDS:
        if kind in armed:
            _cancel_protective(armed[kind])
    margin_call = terms.loss_price(
        side=position.side,
        entry=position.entry_price,
        size=position.size,
        collateral=position.collateral,
        level=position.margin_call_level,
    )
    if margin_call is not None and position.margin_called_at is None:
        _arm(position, ProtectiveOrder.Kind.MARGIN_CALL, trigger_price=margin_call)
    if position.liquidation_price is not None:
        _arm(position, ProtectiveOrder.Kind.LIQUIDATION, trigger_price=position.liquidation_price)


def position_margin_call(*, position: Position, protective: ProtectiveOrder) -> None:
    """The loss reached the margin-call level: warn the trader once (``risk.margin_call``)."""
    position.margin_called_at = protective.fired_at or timezone.now()
    position.resource_version += 1
    position.save(update_fields=["margin_called_at", "resource_version", "updated_at"])
    publish(
        user_id=position.user_id,
        type="risk.margin_call",
        data={
            **position_data(position),
            "mark_price": str(protective.fired_price),
            "margin_call_level": str(position.margin_call_level),
            "liquidation_level": str(position.liquidation_level),
        },
    )


def position_liquidate(*, position: Position, protective: ProtectiveOrder) -> Order | None:
    """The loss reached the liquidation level: close it all at market as a liquidation."""
    closed = position_close(
        position_id=position.pk,
        closed_by="liquidation",
        protective=protective,
        fill_kind=Fill.Kind.LIQUIDATION,
    )
    position.refresh_from_db()
    publish(
        user_id=position.user_id,
        type="risk.liquidation",
        data={**position_data(position), "liquidation_price": str(protective.trigger_price)},
    )
    return closed


def position_protection_update(*, position_id: Any, user: Any, protection: Protection) -> Position:
    """``PATCH /positions/{id}``: set or clear SL / TP / trailing; checked against entry and liquidation."""
    with transaction.atomic():
        position = position_lock(position_id=position_id, user=user)
        if position.status != Position.Status.OPEN:
            raise PositionNotOpen(details={"position_id": str(position.pk)})
        protection_check(
            side=position.side,
            entry=position.entry_price,
            liquidation=position.liquidation_price,
            protection=protection,
        )
        reference = position.entry_price
        try:
            price = price_get(position.symbol)
            reference = terms.closing_price(side=position.side, bid=price.bid, ask=price.ask)
        except ApplicationError:  # no price now: trail from the entry; the engine moves it on the next tick
            reference = position.entry_price
        protection_apply(position=position, protection=protection, reference_price=reference)
        position.resource_version += 1
        position.save(update_fields=["resource_version", "updated_at"])
        publish(user_id=position.user_id, type="position.updated", data=position_data(position))
        return position
