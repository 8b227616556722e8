"""Every rejection code of POST /orders, each shown to change nothing: no order, no position, no
ledger movement, no event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from conftest import bearer_client
from ledger.models import LedgerTransaction
from ledger.selectors import user_balances
from marqetfi.core.models import Event
from trading.models import Order, Position, RiskLimit

pytestmark = pytest.mark.django_db

BTC = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "1000", "leverage": "10"}
SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def snapshot(user: Any) -> tuple[Any, ...]:
    balances = user_balances(user=user)
    return (
        Order.objects.filter(user=user).count(),
        Position.objects.filter(user=user).count(),
        LedgerTransaction.objects.count(),
        Event.objects.filter(user=user).count(),
        balances.available,
        balances.margin,
    )


def no_limits(user: Any) -> None:
    return None


def user_leverage_cap(user: Any) -> None:
    RiskLimit.objects.create(user=user, max_leverage=Decimal(5))


def pair_notional_cap(user: Any) -> None:
    RiskLimit.objects.create(symbol="BTCUSD", max_position_notional=Decimal(5000))


def total_notional_cap(user: Any) -> None:
    RiskLimit.objects.create(user=user, max_total_notional=Decimal(9999))


def one_position_only(user: Any) -> None:
    RiskLimit.objects.create(max_open_positions=1)
    Position.objects.create(
        user=user,
        symbol="ETHUSD",
        category="crypto",
        side="long",
        provider="paper",
        size=Decimal(1),
        entry_price=Decimal(3000),
        collateral=Decimal(100),
        leverage=Decimal(30),
        liquidation_level=Decimal("0.1"),
        margin_call_level=Decimal("0.5"),
    )


def trading_off(user: Any) -> None:
    user.trading_enabled = False
    user.save(update_fields=["trading_enabled"])


CASES: list[tuple[str, dict[str, Any], Callable[[Any], None], str, int]] = [
    ("leverage over the category default", {"leverage": "21"}, no_limits, "leverage_limit_exceeded", 400),
    ("leverage over the user's limit", {"leverage": "6"}, user_leverage_cap, "leverage_limit_exceeded", 400),
    ("notional over the pair's limit", {}, pair_notional_cap, "position_size_exceeded", 400),
    ("notional over the user's total", {}, total_notional_cap, "position_size_exceeded", 400),
    (
        "collateral over the platform maximum",
        {"collateral": "100001"},
        no_limits,
        "position_size_exceeded",
        400,
    ),
    ("more positions than allowed", {}, one_position_only, "too_many_positions", 400),
    ("more than the balance", {"collateral": "9999"}, no_limits, "insufficient_balance", 409),
    ("collateral below the pair minimum", {"collateral": "4"}, no_limits, "collateral_below_minimum", 400),
    ("size below one step", {"collateral": "5", "leverage": "1"}, no_limits, "size_below_step", 400),
    ("limit price off tick", {"type": "limit", "price": "60000.05"}, no_limits, "price_off_tick", 400),
    ("stop-loss off tick", {"stop_loss": "60000.05"}, no_limits, "price_off_tick", 400),
    ("stop-loss above a long's entry", {"stop_loss": "65000"}, no_limits, "invalid_stop_side", 400),
    ("take-profit below a long's entry", {"take_profit": "63000"}, no_limits, "invalid_stop_side", 400),
    (
        "short stop-loss below entry",
        {"side": "short", "stop_loss": "63000"},
        no_limits,
        "invalid_stop_side",
        400,
    ),
    ("stop-loss beyond liquidation", {"stop_loss": "58000"}, no_limits, "stop_beyond_liquidation", 400),
    (
        "trailing stop beyond liquidation",
        {"trailing_stop": {"percent": "20"}},
        no_limits,
        "stop_beyond_liquidation",
        400,
    ),
    (
        "trailing percent out of range",
        {"trailing_stop": {"percent": "60"}},
        no_limits,
        "invalid_trailing_stop",
        400,
    ),
    ("limit order without price", {"type": "limit"}, no_limits, "limit_price_required", 400),
    ("market order with a price", {"price": "64000"}, no_limits, "limit_price_required", 400),
    ("unknown symbol", {"symbol": "NOPEUSD"}, no_limits, "unknown_symbol", 404),
    ("trading switched off", {}, trading_off, "trading_disabled", 409),
    ("float amounts", {"collateral": 1000.5}, no_limits, "validation_error", 400),
    ("collateral with 7 decimals", {"collateral": "10.0000001"}, no_limits, "validation_error", 400),
    ("negative leverage", {"leverage": "-2"}, no_limits, "validation_error", 400),
    (
        "both trailing kinds",
        {"trailing_stop": {"percent": "1", "distance": "5"}},
        no_limits,
        "validation_error",
        400,
    ),
]


@pytest.mark.parametrize(("case", "change", "setup", "code", "status"), CASES, ids=[c[0] for c in CASES])
def test_a_rejected_order_changes_nothing(trader, drive, case, change, setup, code, status):
    drive(BTCUSD="64000", ETHUSD="3000")
    setup(trader)
    before = snapshot(trader)

    response = bearer_client(trader).post("/api/v1/orders", {**BTC, **change}, format="json")

    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert snapshot(trader) == before


def test_an_order_on_a_closed_market_is_refused_and_changes_nothing(trader, drive):
    drive(EURUSD="1.085")
    before = snapshot(trader)

    with time_machine.travel(SATURDAY, tick=False):
        response = bearer_client(trader).post(
            "/api/v1/orders", {**BTC, "symbol": "EURUSD", "collateral": "100"}, format="json"
        )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "market_closed"
    assert snapshot(trader) == before


def test_rounding_accepts_prices_off_tick_and_echoes_what_was_accepted(trader, drive):
    drive(BTCUSD="64000")

    response = bearer_client(trader).post(
        "/api/v1/orders/preview",
        {**BTC, "type": "limit", "price": "60000.06", "stop_loss": "59000.04", "rounding": "nearest"},
        format="json",
    )

    plan = response.json()
    assert plan["ok"] is True
    assert plan["price"] == "60000.1"
    assert plan["stop_loss"] == "59000"
    assert plan["rounding"]["price"] == {"requested": "60000.06", "accepted": "60000.1"}
