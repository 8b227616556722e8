"""The JSON shapes of orders, positions and fills: one place for the API, events and webhooks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from marqetfi.core.formats import decimal_text, timestamp_text
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.services.wallet_trades import native_protection_kinds


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def protective_order_data(protective: ProtectiveOrder) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(protective.pk),
        "kind": protective.kind,
        "status": protective.status,
        "execution_mode": protective.execution_mode,
        "trigger_price": _amount(protective.trigger_price),
        "oco_group": str(protective.oco_group) if protective.oco_group else None,
    }
    if protective.kind == ProtectiveOrder.Kind.TRAILING_STOP:
        data["trailing"] = (
            {"percent": _amount(protective.trail_percent)}
            if protective.trail_percent is not None
            else {"distance": _amount(protective.trail_distance)}
        )
        data["best_price"] = _amount(protective.best_price)
    if protective.fired_at:
        data["fired_at"] = timestamp_text(protective.fired_at)
        data["fired_price"] = _amount(protective.fired_price)
    return data


def order_data(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.pk),
        "client_order_id": order.client_order_id or None,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "purpose": order.purpose,
        "status": order.status,
        "collateral": _amount(order.collateral),
        "leverage": _amount(order.leverage),
        "price": _amount(order.price),
        "size": _amount(order.size),
        "stop_loss": _amount(order.stop_loss),
        "take_profit": _amount(order.take_profit),
        "trailing_stop": order.trailing_stop,
        "provider": order.provider or None,
        "routing": order.routing,
        "execution_mode": _execution_modes(order),
        "filled_size": _amount(order.filled_size),
        "avg_fill_price": _amount(order.avg_fill_price),
        "fee": _amount(order.fee),
        "reject_code": order.reject_code or None,
        "reject_reason": order.reject_reason or None,
        "position_id": str(order.position_id) if order.position_id else None,
        "closed_by": order.closed_by or None,
        "resource_version": order.resource_version,
        "created_at": timestamp_text(order.created_at),
        "updated_at": timestamp_text(order.updated_at),
    }


def _execution_modes(order: Order) -> dict[str, str]:
    """How each protective order asked for is carried out: ``native`` where the venue holds that
    kind itself (stop-loss and take-profit sent with the order to a venue traded from the
    wallet), or where the order's fill armed it at the venue (read from the position's stop
    of that kind and price: one query, only for a filled order that asked for a stop-loss or
    take-profit); else ``synthetic`` (our trigger engine)."""
    native = native_protection_kinds(order.provider) if order.provider else frozenset()
    modes_of = ProtectiveOrder.ExecutionMode
    modes = {
        field: str(modes_of.NATIVE if field in native else modes_of.SYNTHETIC)
        for field in ("stop_loss", "take_profit", "trailing_stop")
        if getattr(order, field) is not None
    }
    if order.status != Order.Status.FILLED or not order.position_id:
        return modes
    asked: dict[str, Decimal] = {
        str(kind): price
        for kind, price in (
            (ProtectiveOrder.Kind.STOP_LOSS, order.stop_loss),
            (ProtectiveOrder.Kind.TAKE_PROFIT, order.take_profit),
        )
        if price is not None
    }
    if not asked:
        return modes
    rows = ProtectiveOrder.objects.filter(position_id=order.position_id, kind__in=list(asked)).order_by(
        "created_at"
    )
    for kind, price, mode in rows.values_list("kind", "trigger_price", "execution_mode"):
        if asked.get(kind) == price:
            modes[kind] = mode
    return modes


def armed_protective_orders(position: Position) -> list[ProtectiveOrder]:
    """The trader's armed stops of a position: from a prefetch when there is one, else one query
    (a position keeps every stop it ever had; only the armed ones matter here)."""
    cache = getattr(position, "_prefetched_objects_cache", {})
    if "protective_orders" in cache:
        rows = list(cache["protective_orders"])
    else:
        rows = list(position.protective_orders.filter(status=ProtectiveOrder.Status.ARMED))
    return _trader_stops(rows)


def _trader_stops(rows: Iterable[ProtectiveOrder]) -> list[ProtectiveOrder]:
    return [
        p for p in rows if p.status == ProtectiveOrder.Status.ARMED and p.kind in ProtectiveOrder.TRADER_KINDS
    ]


def position_data(
    position: Position,
    *,
    mark_price: Decimal | None = None,
    unrealized_pnl: Decimal | None = None,
    armed: Sequence[ProtectiveOrder] | None = None,
) -> dict[str, Any]:
    """``armed``: the position's armed protective orders if the caller holds them (read in its
    transaction, locked), else they are read."""
    armed = armed_protective_orders(position) if armed is None else _trader_stops(armed)
    by_kind = {p.kind: p for p in armed}
    return {
        "id": str(position.pk),
        "symbol": position.symbol,
        "side": position.side,
        "provider": position.provider,
        "status": position.status,
        "size": _amount(position.size),
        "entry_price": _amount(position.entry_price),
        "collateral": _amount(position.collateral),
        "leverage": _amount(position.leverage),
        "liquidation_price": _amount(position.liquidation_price),
        "mark_price": _amount(mark_price),
        "unrealized_pnl": _amount(unrealized_pnl),
        "realized_pnl": _amount(position.realized_pnl),
        "fees_paid": _amount(position.fees_paid),
        "stop_loss": _amount(by_kind[ProtectiveOrder.Kind.STOP_LOSS].trigger_price)
        if ProtectiveOrder.Kind.STOP_LOSS in by_kind
        else None,
        "take_profit": _amount(by_kind[ProtectiveOrder.Kind.TAKE_PROFIT].trigger_price)
        if ProtectiveOrder.Kind.TAKE_PROFIT in by_kind
        else None,
        "trailing_stop": protective_order_data(by_kind[ProtectiveOrder.Kind.TRAILING_STOP])
        if ProtectiveOrder.Kind.TRAILING_STOP in by_kind
        else None,
        "protective_orders": [protective_order_data(p) for p in armed],
        "opened_at": timestamp_text(position.created_at),
        "closed_at": timestamp_text(position.closed_at) if position.closed_at else None,
        "resource_version": position.resource_version,
    }


def fill_data(fill: Fill) -> dict[str, Any]:
    return {
        "id": str(fill.pk),
        "order_id": str(fill.order_id) if fill.order_id else None,
        "position_id": str(fill.position_id),
        "kind": fill.kind,
        "symbol": fill.symbol,
        "side": fill.side,
        "provider": fill.provider,
        "size": _amount(fill.size),
        "price": _amount(fill.price),
        "fee": _amount(fill.fee),
        "realized_pnl": _amount(fill.realized_pnl),
        "executed_at": timestamp_text(fill.created_at),
    }
