"""Positions: closed in full or in part (by the trader, a trigger or a liquidation), warned at
the margin-call level, their stops changed by the trader. Opening and settling are fills
(``trading.services.fills``); stops are ``trading.services.protection``.

Locks: a position row is locked (``position_lock``) before anything about it changes, and
held across the venue call that closes it, so a manual close racing a trigger, or two
triggers, have exactly one effect: the second finds the position closed (or smaller).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from marqetfi.core.errors import ApplicationError
from marqetfi.core.events import publish
from pricing.models import PairListing
from pricing.services.prices import price_get
from providers import registry
from providers.breaker import call_provider
from providers.errors import ProviderError
from trading import terms
from trading.errors import PositionNotFound, PositionNotOpen, SizeOffStep, VenueError
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.presenters import position_data
from trading.services.fills import close_fill_record
from trading.services.protection import Protection, protection_apply, protection_check


def _venue_failure(error: ProviderError) -> VenueError:
    return VenueError(details={"provider": error.provider, "reason": error.message})


def position_lock(*, position_id: Any, user: User | None = None) -> Position:
    """The position row, locked until the transaction ends; ``PositionNotFound`` if not the user's."""
    positions = Position.objects.select_for_update(no_key=True)
    if user is not None:
        positions = positions.filter(user=user)
    try:
        return positions.get(pk=position_id)
    except (Position.DoesNotExist, ValueError, TypeError):
        raise PositionNotFound(details={"position_id": str(position_id)}) from None


# --- closing ---------------------------------------------------------------------------------


def position_close(
    *,
    position_id: Any,
    user: User | None = None,
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
        size = close_size(position, size, rounding)
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


def close_size(position: Position, size: Decimal | None, rounding: str | None) -> Decimal:
    """How much of the position a close of ``size`` closes (all of it if None or more):
    ``SizeOffStep`` if it is not on the pair's size step and no ``rounding`` was asked for."""
    if size is None or size >= position.size:
        return position.size
    step = _size_step(position)
    accepted = terms.to_step_if_asked(size, step, rounding)
    if accepted is None or accepted <= 0:
        raise SizeOffStep(details={"size": str(size), "size_step": str(step)})
    return min(accepted, position.size)


def _size_step(position: Position) -> Decimal:
    listing = PairListing.objects.filter(pair__symbol=position.symbol, provider=position.provider).first()
    return listing.size_step if listing is not None else Decimal(0)


# --- risk ------------------------------------------------------------------------------------


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


# --- stops -----------------------------------------------------------------------------------


def position_protection_update(*, position_id: Any, user: User, protection: Protection) -> Position:
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
