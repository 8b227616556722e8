"""Random sequences of deposits, orders, price moves, cancels and closes never unbalance the ledger.

After every step: ``ledger_check`` finds nothing, no user balance is negative, and the trader's
margin equals what is really locked (open positions' collateral plus resting orders'
collateral and fee).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.checks import ledger_check
from ledger.selectors import user_balances
from ledger.services import balance_adjust
from marqetfi.core.errors import ApplicationError
from pricing.services.paper import paper_price_drive
from tests.accounts.factories import UserFactory
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from trading.models import Order, Position
from trading.services.orders import OrderTerms, order_cancel, order_place
from trading.services.positions import position_close
from trading.triggers.consumer import fire_pending

pytestmark = pytest.mark.django_db(transaction=True)

START = {"BTCUSD": Decimal(64000), "ETHUSD": Decimal(3000)}
TICKS = {"BTCUSD": Decimal("0.1"), "ETHUSD": Decimal("0.01")}

symbols = st.sampled_from(sorted(START))
deposit = st.tuples(st.just("deposit"), st.integers(min_value=-500, max_value=5000))
order = st.tuples(
    st.just("order"),
    symbols,
    st.sampled_from(["long", "short"]),
    st.sampled_from(["market", "limit"]),
    st.integers(min_value=5, max_value=3000),
    st.integers(min_value=1, max_value=25),
    st.integers(min_value=-8, max_value=8),
    st.booleans(),
)
move = st.tuples(st.just("move"), symbols, st.integers(min_value=-12, max_value=12))
cancel = st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=5))
close = st.tuples(st.just("close"), st.integers(min_value=0, max_value=5), st.booleans())
steps = st.lists(st.one_of(deposit, order, move, cancel, close), min_size=1, max_size=12)


def locked_margin(user: Any) -> Decimal:
    positions = sum((p.collateral for p in Position.objects.filter(user=user, status="open")), Decimal(0))
    resting = sum(
        (
            o.collateral + o.fee_reserved
            for o in Order.objects.filter(
                user=user, status__in=["open", "pending", "unknown"], purpose="open"
            )
        ),
        Decimal(0),
    )
    return positions + resting


def run_step(step: tuple[Any, ...], user: Any, staff: Any, prices: dict[str, Decimal]) -> None:
    kind = step[0]
    try:
        if kind == "deposit":
            if step[1]:
                balance_adjust(user=user, amount=Decimal(step[1]), reason="property test", actor=staff)
        elif kind == "order":
            _, symbol, side, order_type, collateral, leverage, offset_pct, with_stop = step
            price = prices[symbol]
            limit = (
                (price * (100 + offset_pct) / 100).quantize(TICKS[symbol]) if order_type == "limit" else None
            )
            stop = None
            if with_stop:
                stop = (price * (Decimal("0.97") if side == "long" else Decimal("1.03"))).quantize(
                    TICKS[symbol]
                )
            order_place(
                user=user,
                order=OrderTerms(
                    symbol=symbol,
                    side=side,
                    type=order_type,
                    collateral=Decimal(collateral),
                    leverage=Decimal(leverage),
                    price=limit,
                    stop_loss=stop,
                ),
            )
        elif kind == "move":
            _, symbol, pct = step
            prices[symbol] = (prices[symbol] * (100 + pct) / 100).quantize(TICKS[symbol])
            paper_price_drive(symbol=symbol, price=prices[symbol])
            fire_pending()
        elif kind == "cancel":
            resting = list(Order.objects.filter(user=user, status="open").order_by("created_at"))
            if resting:
                order_cancel(order_id=resting[step[1] % len(resting)].pk, user=user)
        elif kind == "close":
            open_positions = list(Position.objects.filter(user=user, status="open").order_by("created_at"))
            if open_positions:
                position = open_positions[step[1] % len(open_positions)]
                size = None
                if step[2]:
                    size = (position.size / 2).quantize(Decimal("0.0001"))
                position_close(position_id=position.pk, user=user, size=size or None, rounding="down")
    except ApplicationError:
        pass  # a refusal is a legitimate outcome; what matters is that it changed nothing wrong


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=steps)
def test_the_ledger_stays_balanced_whatever_the_trader_does(paper_market, staff, sequence):
    user: Any = UserFactory()
    balance_adjust(user=user, amount=Decimal(2000), reason="property test", actor=staff)
    prices = dict(START)
    for symbol, price in prices.items():
        paper_price_drive(symbol=symbol, price=price)
    for step in sequence:
        run_step(step, user, staff, prices)
        assert ledger_check() == [], step
        balances = user_balances(user=user)
        assert balances.available >= 0
        assert balances.margin == locked_margin(user), step
