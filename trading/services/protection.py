"""Protective orders of a position: the trader's stop-loss, take-profit and trailing stop,
checked against the entry and the liquidation price and sharing one OCO group, and the
platform's margin call and liquidation. Armed and cancelled in the caller's transaction
(the position is locked by the caller); the trigger index follows after the commit.

Native stops: at a venue that holds stops itself (``providers.base.NativeStops``), a
stop-loss or take-profit is placed there as a reduce-only trigger order (client id: the
protective order's id), recorded ``execution_mode`` native with the venue's ids, and kept
out of our trigger index: the venue fires it, and trading learns of it like of any order
(``protective_native_fired``). Cancelling one cancels it at the venue. When the venue will
not take it, it is armed synthetic instead (logged as an error: the position is still
protected, by us). Trailing stops and the platform's risk triggers are always ours.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from marqetfi.core.rows import Lock, RowSelect, column_value
from providers import registry
from providers.base import NativeStops
from providers.breaker import call_provider
from providers.errors import ProviderError
from trading import terms
from trading.errors import InvalidStopSide, InvalidTrailingStop, StopBeyondLiquidation
from trading.models import Order, Position, ProtectiveOrder
from trading.triggers.index import protective_entry, protective_index, protective_rekey, protective_unindex

logger = logging.getLogger(__name__)

MAX_TRAIL_PERCENT = Decimal(50)
NATIVE_KINDS = (ProtectiveOrder.Kind.STOP_LOSS, ProtectiveOrder.Kind.TAKE_PROFIT)


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


_armed_locked = RowSelect(
    ProtectiveOrder, '"position_id" = %s AND "status" = %s', ("position", "status"), lock=Lock.NO_KEY_UPDATE
)


def protective_armed(position: Position) -> dict[str, ProtectiveOrder]:
    """The position's armed protective orders by kind, locked."""
    return {p.kind: p for p in _armed_locked.fetch(position.pk, ProtectiveOrder.Status.ARMED)}


def protective_cancel(protective: ProtectiveOrder) -> None:
    """Disarm a protective order; a native one is cancelled at its venue too."""
    protective.status = ProtectiveOrder.Status.CANCELLED
    protective.save(update_fields=["status", "updated_at"])
    if protective.execution_mode == ProtectiveOrder.ExecutionMode.NATIVE:
        _native_cancel(protective)
    else:
        transaction.on_commit(partial(protective_unindex, protective.pk))


def _native_cancel(protective: ProtectiveOrder) -> None:
    """Cancel a native stop at its venue, by its own id. Also when its position was closed in
    full (a venue's close may take the stops with it, but only those it lists at that moment:
    a stop placed a moment earlier may not be listed yet, while a cancel by id is executed
    after it), so a cancel of a stop already gone is expected. A refusal is logged, not
    raised: the stop is no longer ours here (a late fill of it is never recorded twice), and
    reconciliation lists a trigger order left resting there."""
    position = protective.position
    if not protective.venue_order_id:
        return
    try:
        call_provider(
            position.provider,
            registry.venue(position.provider).cancel_order,
            account_ref=position.account_ref,
            venue_order_id=protective.venue_order_id,
        )
    except ProviderError as exc:
        logger.warning(
            "native %s %s of position %s not cancelled at %s: %s",
            protective.kind,
            protective.pk,
            position.pk,
            position.provider,
            exc.message,
            extra={"protective_id": str(protective.pk), "provider": position.provider},
        )


def _native_place(position: Position, protective: ProtectiveOrder) -> bool:
    """Place a stop-loss or take-profit at a venue that holds them; True if it took it."""
    if protective.kind not in NATIVE_KINDS or not position.venue_position_id:
        return False
    venue = registry.venue(position.provider)
    if not isinstance(venue, NativeStops):
        return False
    client_order_id = str(protective.pk)
    try:
        placed = call_provider(
            position.provider,
            venue.place_stop,
            account_ref=position.account_ref,
            venue_position_id=position.venue_position_id,
            kind=str(protective.kind),
            trigger_price=protective.trigger_price,
            client_order_id=client_order_id,
        )
    except ProviderError as exc:
        logger.error(
            "native %s of position %s refused by %s, armed synthetic instead: %s",
            protective.kind,
            position.pk,
            position.provider,
            exc.message,
            extra={"protective_id": str(protective.pk), "provider": position.provider},
        )
        return False
    protective.execution_mode = ProtectiveOrder.ExecutionMode.NATIVE
    protective.venue_client_order_id = placed.client_order_id or client_order_id
    protective.venue_order_id = placed.venue_order_id
    protective.save(update_fields=["execution_mode", "venue_client_order_id", "venue_order_id", "updated_at"])
    return True


def _arm(position: Position, kind: str, **fields: Any) -> ProtectiveOrder:
    protective = ProtectiveOrder.objects.create(
        user_id=position.user_id,
        position=position,
        symbol=position.symbol,
        side=position.side,
        kind=kind,
        **fields,
    )
    if not _native_place(position, protective):
        transaction.on_commit(partial(protective_index, protective.pk))
    return protective


def protection_apply(
    *,
    position: Position,
    protection: Protection,
    reference_price: Decimal,
    native_kinds: frozenset[str] = frozenset(),
) -> None:
    """Replace the position's stops by those asked for (the position is locked by the caller).

    Stop-loss (or, in its place, the trailing stop) and take-profit share one OCO group.
    ``native_kinds``: the kinds the venue holds itself (set there by the caller); they are
    recorded ``native`` and never indexed for our trigger engine.
    """
    armed = {
        kind: p for kind, p in protective_armed(position).items() if kind in ProtectiveOrder.TRADER_KINDS
    }
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
            protective_cancel(protective)
            del armed[kind]
    if not wanted:
        return
    group = next((p.oco_group for p in armed.values() if p.oco_group), None) or uuid.uuid4()
    for kind, fields in wanted.items():
        mode = (
            ProtectiveOrder.ExecutionMode.NATIVE
            if kind in native_kinds
            else ProtectiveOrder.ExecutionMode.SYNTHETIC
        )
        armed[kind] = _arm(position, kind, oco_group=group, execution_mode=mode, **fields)
    for protective in armed.values():
        if protective.oco_group != group:
            protective.oco_group = group
            protective.save(update_fields=["oco_group", "updated_at"])


def protective_native_resize(
    *, position: Position, keep: frozenset[str] = frozenset(), armed: dict[str, ProtectiveOrder] | None = None
) -> bool:
    """The position grew: its stops held at the venue as trigger orders for a size (placed
    through ``NativeStops``) are placed again, for the whole position, at the same prices; the
    old ones are cancelled there. ``keep``: kinds just placed for the new size, left alone.
    A venue whose stops are not sized (Ostium's belong to the trade) has none to resize.
    ``armed``: ``protective_armed(position)`` if the caller has read it already. Whether any
    was placed again (``armed`` then no longer says what is armed)."""
    armed = protective_armed(position) if armed is None else armed
    prices = {
        kind: protective.trigger_price
        for kind, protective in armed.items()
        if kind in NATIVE_KINDS
        and kind not in keep
        and protective.execution_mode == ProtectiveOrder.ExecutionMode.NATIVE
        and protective.venue_client_order_id
    }
    if not prices:
        return False
    protection_apply(
        position=position,
        protection=Protection(
            stop_loss=prices.get(ProtectiveOrder.Kind.STOP_LOSS),
            take_profit=prices.get(ProtectiveOrder.Kind.TAKE_PROFIT),
        ),
        reference_price=position.entry_price,
    )
    return True


def risk_triggers_arm(position: Position, *, armed: dict[str, ProtectiveOrder] | None = None) -> None:
    """(Re-)arm the platform's margin call and liquidation at the position's current prices.
    ``armed``: the position's armed protective orders if the caller has read them already
    (their margin call and liquidation, which changing the stops leaves alone, are current).

    One already armed is moved to its new price in place (one UPDATE for both, their index
    entries re-keyed after the commit in one pipeline) rather than cancelled and armed anew:
    a fill that adds to a position moves both on every order. One no longer wanted (the
    position was margin-called, or has no liquidation price) is cancelled; one missing is
    armed."""
    armed = protective_armed(position) if armed is None else armed
    margin_call = terms.loss_price(
        side=position.side,
        entry=position.entry_price,
        size=position.size,
        collateral=position.collateral,
        level=position.margin_call_level,
    )
    wanted: dict[str, Decimal | None] = {
        ProtectiveOrder.Kind.MARGIN_CALL: margin_call if position.margin_called_at is None else None,
        ProtectiveOrder.Kind.LIQUIDATION: position.liquidation_price,
    }
    moved: list[ProtectiveOrder] = []
    for kind, price in wanted.items():
        current = armed.get(kind)
        if current is not None and (
            price is None or current.execution_mode != ProtectiveOrder.ExecutionMode.SYNTHETIC
        ):
            protective_cancel(current)
            current = None
        if price is None:
            continue
        if current is None:
            _arm(position, kind, trigger_price=price)
        elif current.trigger_price != price:
            current.trigger_price = price
            moved.append(current)
    if not moved:
        return
    _trigger_prices_move(moved)
    transaction.on_commit(partial(protective_rekey, [protective_entry(p) for p in moved]))


@lru_cache(maxsize=8)
def _trigger_prices_move_sql(count: int) -> str:
    cases = " ".join(["WHEN %s THEN %s"] * count)
    ids = ", ".join(["%s"] * count)
    table = connection.ops.quote_name(ProtectiveOrder._meta.db_table)
    return (
        f'UPDATE {table} SET "trigger_price" = CASE "id" {cases} ELSE "trigger_price" END, '  # noqa: S608
        f'"updated_at" = %s WHERE "id" IN ({ids})'
    )


def _trigger_prices_move(moved: list[ProtectiveOrder]) -> None:
    """Store the new trigger prices of ``moved`` (and their ``updated_at``) in one UPDATE, its
    SQL built once per count (one or two: a position's margin call and liquidation) rather
    than compiled from a ``Case`` expression on every fill."""
    now = timezone.now()
    params: list[Any] = []
    for protective in moved:
        params.append(column_value(ProtectiveOrder, "id", protective.pk))
        params.append(column_value(ProtectiveOrder, "trigger_price", protective.trigger_price))
        protective.updated_at = now
    params.append(column_value(ProtectiveOrder, "updated_at", now))
    params += [column_value(ProtectiveOrder, "id", protective.pk) for protective in moved]
    with connection.cursor() as cursor:
        cursor.execute(_trigger_prices_move_sql(len(moved)), params)


def protective_rearm(*, close_order: Order) -> None:
    """A close that a trigger fired was refused: that trigger is armed again (unless another of
    its kind was armed since), so the next tick or sweep can fire it once more."""
    for protective in ProtectiveOrder.objects.select_for_update(no_key=True).filter(
        close_order=close_order, status=ProtectiveOrder.Status.FIRED
    ):
        if ProtectiveOrder.objects.filter(
            position_id=protective.position_id, kind=protective.kind, status=ProtectiveOrder.Status.ARMED
        ).exists():
            continue
        protective.status = ProtectiveOrder.Status.ARMED
        protective.fired_at = None
        protective.fired_price = None
        protective.close_order = None
        protective.save(update_fields=["status", "fired_at", "fired_price", "close_order", "updated_at"])
        transaction.on_commit(partial(protective_index, protective.pk))
