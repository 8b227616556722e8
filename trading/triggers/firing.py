"""Firing a trigger, exactly once however many ticks and sweeps see it at the same moment.

A protective order fires in one transaction that locks its position first, then moves the
row from ``armed`` to ``fired`` by a conditional update; only the caller that changed the row
cancels the OCO twins and closes the position (``position_close``). A venue failure rolls all
of it back: the trigger stays armed and the next tick or sweep tries again. Resting limit
orders fire through ``order_limit_execute``, exactly once by its own conditional status change.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from marqetfi.core.errors import ApplicationError
from trading import terms
from trading.models import Order, Position, ProtectiveOrder
from trading.services.orders import order_limit_execute
from trading.services.positions import (
    position_close,
    position_liquidate,
    position_lock,
    position_margin_call,
)
from trading.services.protection import protective_cancel
from trading.triggers.index import (
    ARMED,
    SYNTHETIC,
    crossed,
    order_entry,
    order_unindex,
    protective_entry,
    protective_unindex,
)

logger = logging.getLogger(__name__)


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
    protective = ProtectiveOrder.objects.filter(
        pk=protective_id, status=ARMED, execution_mode=SYNTHETIC
    ).first()
    if protective is None:
        return None
    if position.status == Position.Status.CLOSING:  # a close is pending: its outcome decides
        return None
    if position.status != Position.Status.OPEN:  # closed without it: nothing left to protect
        ProtectiveOrder.objects.filter(pk=protective.pk, status=ARMED).update(
            status=ProtectiveOrder.Status.CANCELLED, updated_at=timezone.now()
        )
        _after_commit_unindex(protective.pk)
        return None
    if not crossed(protective_entry(protective).fire_set, protective.trigger_price, bid=bid, ask=ask):
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
        protective_cancel(twin)
    position_close(position_id=position.pk, closed_by=protective.kind, protective=protective)


def order_fire(*, order_id: Any, bid: Decimal, ask: Decimal) -> bool:
    """Execute a resting limit order if ``bid`` / ``ask`` cross its price; True if this call did."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return False
    entry = order_entry(order)
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
