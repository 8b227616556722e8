"""Positions: closed in full or in part (by the trader, a trigger or a liquidation), warned at
the margin-call level, their stops changed by the trader. Opening and settling are fills
(``trading.services.fills``); stops are ``trading.services.protection``.

Locks: a position row is locked (``position_lock``) before anything about it changes, and
held across the venue call that closes it, so a manual close racing a trigger, or two
triggers, have exactly one effect: the second finds the position closed (or smaller).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from functools import partial
from http import HTTPStatus
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from marqetfi.core.errors import ApplicationError
from marqetfi.core.events import publish
from pricing.models import PairListing
from pricing.services.prices import price_get
from providers import registry
from providers.base import VenueOrder, VenueOrderStatus, WalletTradedVenue
from providers.breaker import call_provider
from providers.errors import ProviderError, ProviderUnavailable
from trading import terms
from trading.errors import PositionClosing, PositionNotFound, PositionNotOpen, SizeOffStep, VenueError
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.presenters import order_data, position_data
from trading.services.fills import close_fill_record
from trading.services.protection import (
    Protection,
    protection_apply,
    protection_check,
    protective_armed,
    protective_cancel,
    protective_rearm,
)
from trading.services.venues import poll_schedule
from trading.services.wallet_trades import (
    native_protection_kinds,
    trading_wallet,
    wallet_trade_send,
    wallet_transactions_send,
    wallet_venue,
)
from trading.triggers.index import protective_index

logger = logging.getLogger(__name__)


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

    The close order (our id is the venue's client id) and the position's ``closing`` status
    commit before the venue is asked, so a second close is refused (``PositionClosing``) and a
    trigger does nothing while this one is at the venue. A filled answer settles at once; a
    pending one is looked up once more, then polled (``orders_reconcile``); a lost one leaves
    the order ``unknown`` for the reconciler; a refusal puts the position back to ``open``.
    """
    with transaction.atomic():
        position = position_lock(position_id=position_id, user=user)
        if position.status == Position.Status.CLOSING:
            raise PositionClosing(details={"position_id": str(position.pk), "status": position.status})
        if position.status != Position.Status.OPEN:
            if protective is not None or resting_order is not None:
                return None
            raise PositionNotOpen(details={"position_id": str(position.pk), "status": position.status})
        size = close_size(position, size, rounding)
        order = resting_order or _close_order_create(
            position,
            size=size,
            closed_by=Fill.Kind.LIQUIDATION if fill_kind == Fill.Kind.LIQUIDATION else closed_by,
            routing={"reason": "the position's venue", "attempts": []},
        )
        position.status = Position.Status.CLOSING
        position.resource_version += 1
        position.save(update_fields=["status", "resource_version", "updated_at"])
        publish(user_id=position.user_id, type="position.updated", data=position_data(position))
        if protective is not None:
            protective.close_order = order
            protective.save(update_fields=["close_order", "updated_at"])
    try:
        venue = registry.venue(position.provider)
        traded = wallet_venue(venue)
        if traded is not None:
            venue_order = _close_from_wallet(traded, position, order, size)
        else:
            venue_order = call_provider(
                position.provider,
                venue.close_position,
                account_ref=position.account_ref,
                venue_position_id=position.venue_position_id,
                size=None if size >= position.size else size,
                client_order_id=str(order.pk),
            )
    except ApplicationError as exc:  # the wallet cannot pay, no price for the slippage reference
        position_close_answer_record(order_id=order.pk, venue_order=None, failure=exc.message)
        raise
    except ProviderError as exc:
        if outcome_unknown(exc):
            return _close_mark_unknown(order_id=order.pk, error=exc)
        position_close_answer_record(order_id=order.pk, venue_order=None, failure=exc.message)
        raise _venue_failure(exc) from exc
    recorded = position_close_answer_record(order_id=order.pk, venue_order=venue_order)
    if recorded.status in (Order.Status.PENDING, Order.Status.UNKNOWN):
        recorded = position_close_poll(order_id=recorded.pk, just_acknowledged=True)
    if recorded.status in (Order.Status.REJECTED, Order.Status.CANCELLED):
        raise _venue_failure(ProviderError(position.provider, recorded.reject_reason or "close not filled"))
    return recorded


def _close_from_wallet(
    venue: WalletTradedVenue, position: Position, order: Order, size: Decimal
) -> VenueOrder:
    """Send the close of a position at a venue traded from the user's wallet; its answer is
    pending, followed by the transaction's hash. The order's size becomes what the venue's
    transaction really closes (a percentage of the trade, rounded down)."""
    wallet = trading_wallet(user_id=position.user_id, address=position.account_ref)
    quote = price_get(position.symbol)
    trade = call_provider(
        position.provider,
        venue.close_trade,
        account_ref=position.account_ref,
        venue_position_id=position.venue_position_id,
        size=size,
        position_size=position.size,
        market_price=(quote.bid + quote.ask) / 2,
    )
    if trade.size is not None and trade.size != order.size:
        order.size = trade.size
        Order.objects.filter(pk=order.pk).update(size=trade.size)
    tx_hash = wallet_trade_send(venue=venue, wallet=wallet, trade=trade)
    return VenueOrder(venue_order_id="", client_order_id=tx_hash, status=VenueOrderStatus.PENDING)


def _close_order_create(position: Position, *, size: Decimal, closed_by: str, **fields: Any) -> Order:
    """A market order closing ``size`` of ``position`` at its venue (``closed_by`` who asked)."""
    return Order.objects.create(
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
        **fields,
    )


def outcome_unknown(error: ProviderError) -> bool:
    """A timeout or a server error after sending: the venue may have acted on the request."""
    if isinstance(error, ProviderUnavailable):
        return False
    if error.status_code is None:
        return "timed out" in error.message
    return error.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR


def _close_mark_unknown(*, order_id: Any, error: ProviderError) -> Order:
    """The venue's answer to a close was lost: the order is ``unknown`` and the position stays
    ``closing`` until the reconciler has asked the venue by client id (never closed twice)."""
    with transaction.atomic():
        order = Order.objects.select_for_update(no_key=True).get(pk=order_id)
        if order.status != Order.Status.PENDING:
            return order
        order.status = Order.Status.UNKNOWN
        order.routing = {**order.routing, "attempts": [{"provider": error.provider, "error": error.message}]}
        order.resource_version += 1
        order.save(update_fields=["status", "routing", "resource_version", "updated_at"])
        publish(user_id=order.user_id, type="order.updated", data=order_data(order))
        return order


def position_close_answer_record(
    *, order_id: Any, venue_order: VenueOrder | None, failure: str = ""
) -> Order:
    """What the venue said about a close, recorded once (the order row is locked and only a
    ``pending`` or ``unknown`` close changes): filled settles at the real price and size (a
    partial fill closes that much and the position is ``open`` again); refused, cancelled or
    unknown to the venue (``venue_order`` None) gives the position back (``open``) and re-arms
    the trigger that fired it; still working schedules the next look-up."""
    with transaction.atomic():
        order = Order.objects.select_for_update(no_key=True).get(pk=order_id)
        if order.status not in (Order.Status.PENDING, Order.Status.UNKNOWN):
            return order
        position = position_lock(position_id=order.position_id)
        status = venue_order.status if venue_order is not None else VenueOrderStatus.REJECTED
        if (
            venue_order is not None
            and status in (VenueOrderStatus.FILLED, VenueOrderStatus.PARTIALLY_FILLED)
            and venue_order.filled_size > 0
            and venue_order.avg_fill_price is not None
            and position.status in Position.LIVE
        ):
            position.status = Position.Status.OPEN  # a full fill makes it closed or liquidated
            close_fill_record(
                position=position,
                order=order,
                size=min(venue_order.filled_size, position.size),
                price=venue_order.avg_fill_price,
                kind=Fill.Kind.LIQUIDATION if order.closed_by == Fill.Kind.LIQUIDATION else Fill.Kind.CLOSE,
                venue_order_id=venue_order.venue_order_id,
            )
            return order
        if venue_order is not None and status not in FINAL_REFUSALS and position.status in Position.LIVE:
            order.venue_order_id = venue_order.venue_order_id or order.venue_order_id
            if venue_order.client_order_id and venue_order.client_order_id != str(order.pk):
                order.venue_client_order_id = venue_order.client_order_id
            poll_schedule(order)
            order.save(
                update_fields=[
                    "venue_order_id",
                    "venue_client_order_id",
                    "next_poll_at",
                    "poll_attempts",
                    "updated_at",
                ]
            )
            return order
        reason = failure or (venue_order.reject_reason if venue_order else None) or "venue_never_received"
        _close_refused(order, position, cancelled=status == VenueOrderStatus.CANCELLED, reason=reason)
        return order


FINAL_REFUSALS = (VenueOrderStatus.REJECTED, VenueOrderStatus.CANCELLED)


def _close_refused(order: Order, position: Position, *, cancelled: bool, reason: str) -> None:
    """The close did not happen: the order ends ``rejected`` (``cancelled`` if the venue
    cancelled it), the position is ``open`` again and the trigger that fired it is armed again."""
    order.status = Order.Status.CANCELLED if cancelled else Order.Status.REJECTED
    order.reject_code = "" if cancelled else "venue_rejected"
    order.reject_reason = reason
    order.next_poll_at = None
    order.resource_version += 1
    order.save(
        update_fields=[
            "status",
            "reject_code",
            "reject_reason",
            "next_poll_at",
            "resource_version",
            "updated_at",
        ]
    )
    publish(
        user_id=order.user_id,
        type="order.cancelled" if cancelled else "order.rejected",
        data=order_data(order),
    )
    if position.status == Position.Status.CLOSING:
        position.status = Position.Status.OPEN
        position.resource_version += 1
        position.save(update_fields=["status", "resource_version", "updated_at"])
        publish(user_id=position.user_id, type="position.updated", data=position_data(position))
    protective_rearm(close_order=order)


def position_close_poll(*, order_id: Any, just_acknowledged: bool = False) -> Order:
    """Ask the venue, by client id, about a close that is pending or whose answer was lost,
    and record what it says (``position_close_answer_record``). A venue that does not answer
    leaves it as it is, for the next poll; so does one that has no such close yet right after
    acknowledging it (``just_acknowledged``: Lighter's sequencer lists it only once executed),
    where later it would mean the venue never received it."""
    order = Order.objects.select_related("position").get(pk=order_id)
    if order.status not in (Order.Status.PENDING, Order.Status.UNKNOWN) or order.position is None:
        return order
    try:
        venue = registry.venue(order.provider)
        venue_order = call_provider(
            order.provider,
            venue.get_order,
            account_ref=order.position.account_ref,
            client_order_id=order.venue_client_order_id or str(order.pk),
        )
    except ProviderError as exc:
        logger.warning("close %s: %s did not answer: %s", order.pk, order.provider, exc.message)
        return order
    if venue_order is None and just_acknowledged:
        return order
    if (
        venue_order is not None
        and venue_order.status == VenueOrderStatus.FILLED
        and wallet_venue(venue) is not None
        and order.size is not None
    ):
        # The transaction closed the percentage of the trade that ``order.size`` is, all of
        # it or nothing: the venue's own size is reckoned at the close price, not the entry.
        venue_order = replace(venue_order, filled_size=order.size)
    return position_close_answer_record(order_id=order.pk, venue_order=venue_order)


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


# --- stops held by the venue (native) ---------------------------------------------------------


def protective_native_poll() -> int:
    """Ask the venues about every open position whose stops they hold (``native``): a
    position the venue closed at one of them is recorded (``protective_native_fired``).
    Returns how many were. A venue that does not answer is asked again on the next run."""
    recorded = 0
    positions = Position.objects.filter(
        status=Position.Status.OPEN,
        protective_orders__status=ProtectiveOrder.Status.ARMED,
        protective_orders__execution_mode=ProtectiveOrder.ExecutionMode.NATIVE,
    ).distinct()
    for position in positions.order_by("pk"):
        venue = wallet_venue(registry.venue(position.provider))
        if venue is None or not position.venue_position_id:
            continue
        try:
            closed = call_provider(
                position.provider,
                venue.native_close,
                account_ref=position.account_ref,
                venue_position_id=position.venue_position_id,
            )
        except ProviderError as exc:
            logger.warning("position %s: %s did not answer: %s", position.pk, position.provider, exc.message)
            continue
        if closed is None:
            continue
        armed = ProtectiveOrder.objects.filter(
            position=position,
            status=ProtectiveOrder.Status.ARMED,
            execution_mode=ProtectiveOrder.ExecutionMode.NATIVE,
        )
        protective = armed.filter(kind=closed.kind).first() or armed.first()
        if protective is None:
            continue
        # The venue closed the whole trade at its stop.
        fired = protective_native_fired(
            protective_id=protective.pk,
            venue_order=VenueOrder(
                venue_order_id=closed.venue_order_id,
                client_order_id="",
                status=VenueOrderStatus.FILLED,
                filled_size=position.size,
                avg_fill_price=closed.price,
            ),
            kind=closed.kind,
        )
        recorded += fired is not None
    return recorded


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
        native = native_protection_kinds(position.provider)
        if native:
            _protection_send(position, protection)
        protection_apply(
            position=position, protection=protection, reference_price=reference, native_kinds=native
        )
        position.resource_version += 1
        position.save(update_fields=["resource_version", "updated_at"])
        publish(user_id=position.user_id, type="position.updated", data=position_data(position))
        return position


def _protection_send(position: Position, protection: Protection) -> None:
    """Set the stop-loss and take-profit that the position's venue holds (``native``) there,
    from the user's wallet, before our rows say so; a refusal changes nothing here (502)."""
    venue = wallet_venue(registry.venue(position.provider))
    if venue is None:
        return
    try:
        transactions = call_provider(
            position.provider,
            venue.protection_update,
            account_ref=position.account_ref,
            venue_position_id=position.venue_position_id,
            stop_loss=protection.stop_loss,
            take_profit=protection.take_profit,
            clear_stop_loss=protection.clear_stop_loss,
            clear_take_profit=protection.clear_take_profit,
        )
        if transactions:
            wallet = trading_wallet(user_id=position.user_id, address=position.account_ref)
            wallet_transactions_send(venue=venue, wallet=wallet, transactions=transactions)
    except ProviderError as exc:
        reverted = venue.revert_reason(exc)
        raise VenueError(
            details={
                "provider": position.provider,
                "reason": f"reverts: {reverted}" if reverted else exc.message,
            }
        ) from exc


# --- native stops ----------------------------------------------------------------------------


def protective_native_fired(
    *, protective_id: Any, venue_order: VenueOrder, kind: str | None = None
) -> ProtectiveOrder | None:
    """A native stop-loss or take-profit fired at its venue (seen on the venue's stream or by
    polling): record the close it made in our book, exactly once.

    Filled: the stop is ``fired`` at the venue's price, a close order (``closed_by`` its kind,
    the venue's client id) records the fill through ``close_fill_record`` at the venue's price
    and size (collateral released, P&L and fee settled in the ledger), and the other leg of
    the OCO is cancelled here and at the venue. Cancelled or rejected by the venue on its own:
    the stop is armed synthetic instead, so the position stays protected. Anything else (still
    waiting for its trigger) changes nothing. Returns the stop if this call changed it.

    Exactly once however many followers and polls see the same fill: the position is locked,
    then only a stop still armed and native changes. ``kind`` ``liquidation``: the venue
    liquidated the position (settled as a liquidation) rather than fire the stop.
    """
    liquidation = kind == Fill.Kind.LIQUIDATION
    position_id = (
        ProtectiveOrder.objects.filter(pk=protective_id).values_list("position_id", flat=True).first()
    )
    if position_id is None:
        return None
    status = venue_order.status
    filled = (
        status in (VenueOrderStatus.FILLED, VenueOrderStatus.PARTIALLY_FILLED)
        and venue_order.filled_size > 0
        and venue_order.avg_fill_price is not None
    )
    if not filled and status not in FINAL_REFUSALS:
        return None
    with transaction.atomic():
        position = position_lock(position_id=position_id)
        protective = (
            ProtectiveOrder.objects.select_for_update(no_key=True)
            .filter(
                pk=protective_id,
                status=ProtectiveOrder.Status.ARMED,
                execution_mode=ProtectiveOrder.ExecutionMode.NATIVE,
            )
            .first()
        )
        if protective is None:
            return None
        if not filled:
            logger.error(
                "native %s %s of position %s %s by %s (%s): armed synthetic instead",
                protective.kind,
                protective.pk,
                position.pk,
                status,
                position.provider,
                venue_order.reject_reason or "no reason given",
                extra={"protective_id": str(protective.pk), "provider": position.provider},
            )
            protective.execution_mode = ProtectiveOrder.ExecutionMode.SYNTHETIC
            protective.save(update_fields=["execution_mode", "updated_at"])
            transaction.on_commit(partial(protective_index, protective.pk))
            return protective
        price = venue_order.avg_fill_price
        assert price is not None
        protective.status = ProtectiveOrder.Status.FIRED
        protective.fired_at = timezone.now()
        protective.fired_price = price
        if position.status not in Position.LIVE:  # closed here already: nothing left to record
            protective.save(update_fields=["status", "fired_at", "fired_price", "updated_at"])
            return protective
        size = min(venue_order.filled_size, position.size)
        order = _close_order_create(
            position,
            size=size,
            closed_by=Fill.Kind.LIQUIDATION if liquidation else protective.kind,
            venue_client_order_id=protective.venue_client_order_id,
            routing={
                "reason": f"a native {protective.kind} fired at the venue",
                "attempts": [{"provider": position.provider, "status": str(status)}],
            },
        )
        protective.close_order = order
        protective.save(update_fields=["status", "fired_at", "fired_price", "close_order", "updated_at"])
        for twin_kind, twin in protective_armed(position).items():
            if twin_kind in ProtectiveOrder.TRADER_KINDS:
                protective_cancel(twin)
        close_fill_record(
            position=position,
            order=order,
            size=size,
            price=price,
            kind=Fill.Kind.LIQUIDATION if liquidation else Fill.Kind.CLOSE,
            venue_order_id=venue_order.venue_order_id,
        )
        logger.info(
            "native %s of position %s fired at %s: %s closed at %s",
            protective.kind,
            position.pk,
            position.provider,
            size,
            price,
            extra={"protective_id": str(protective.pk), "provider": position.provider},
        )
        return protective
