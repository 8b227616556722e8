"""Margin calls and liquidations on the paper venue, fired by the trigger engine like any stop."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger.selectors import user_balances
from marqetfi.core.models import Event
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from trading.models import Fill, Position, ProtectiveOrder
from trading.services.orders import OrderTerms, order_place

pytestmark = pytest.mark.django_db(transaction=True)

BTC = OrderTerms(symbol="BTCUSD", side="long", type="market", collateral=Decimal(1000), leverage=Decimal(10))


def events(user, kind: str) -> list[dict]:
    return list(Event.objects.filter(user=user, type=kind).order_by("seq").values_list("data", flat=True))


def test_every_position_gets_a_margin_call_and_a_liquidation_armed(trader, drive):
    drive(BTCUSD="64000")
    order, _ = order_place(user=trader, order=BTC)

    armed = {
        p.kind: p.trigger_price
        for p in ProtectiveOrder.objects.filter(position_id=order.position_id, status="armed")
    }

    # 50 % and 90 % of 1,000 USDC lost over 0.1562 BTC
    assert armed["margin_call"].quantize(Decimal("0.01")) == Decimal("60798.98")
    assert armed["liquidation"].quantize(Decimal("0.01")) == Decimal("58238.16")
    position = Position.objects.get(pk=order.position_id)
    assert position.liquidation_price == armed["liquidation"]


def test_adding_to_a_position_moves_its_margin_call_and_liquidation_in_the_index(trader, drive):
    from trading.triggers.index import BID_BELOW, index_key, protective_member, redis_connection

    drive(BTCUSD="64000")
    order, _ = order_place(user=trader, order=BTC)
    drive(BTCUSD="66000")
    order_place(user=trader, order=BTC)  # a higher entry: both triggers move up

    armed = list(ProtectiveOrder.objects.filter(position_id=order.position_id, status="armed"))
    assert {p.kind for p in armed} == {"margin_call", "liquidation"}
    assert ProtectiveOrder.objects.filter(position_id=order.position_id).count() == 2
    position = Position.objects.get(pk=order.position_id)
    assert next(p for p in armed if p.kind == "liquidation").trigger_price == position.liquidation_price
    redis, key = redis_connection(), index_key("BTCUSD", BID_BELOW)
    for protective in armed:  # at their new prices in the index (the old ones are ~3 % lower)
        # SQLite keeps a decimal of this size as a double, so the row read back may differ
        # from the price indexed in the 16th significant digit; PostgreSQL keeps it exactly.
        score = redis.zscore(key, protective_member(protective.pk))
        assert score == pytest.approx(float(protective.trigger_price), rel=1e-12)


def test_a_margin_call_warns_once_then_the_liquidation_closes_the_position(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")
    order, _ = order_place(user=trader, order=BTC)

    drive(BTCUSD="60500")
    drive(BTCUSD="60000")

    position = Position.objects.get(pk=order.position_id)
    assert position.status == "open"
    assert position.margin_called_at is not None
    calls = events(trader, "risk.margin_call")
    assert len(calls) == 1
    assert calls[0]["id"] == str(position.pk)

    drive(BTCUSD="58000")

    position.refresh_from_db()
    assert position.status == "liquidated"
    fill = Fill.objects.get(position=position, kind="liquidation")
    assert (fill.size, fill.price) == (Decimal("0.1562"), Decimal("58000"))
    assert len(events(trader, "risk.liquidation")) == 1
    # 8,995 + (1,000 - 937.2 loss - 4.5298 fee)
    assert user_balances(user=trader).available == Decimal("9053.2702")
    assert user_balances(user=trader).margin == Decimal(0)
    assert not ProtectiveOrder.objects.filter(position=position, status="armed").exists()
    drive(BTCUSD="50000")
    assert Fill.objects.filter(position=position).count() == 2
    ledger_balanced()


def test_a_partial_close_moves_the_liquidation_price_with_the_position(trader, drive):
    from trading.services.positions import position_close

    drive(BTCUSD="64000")
    order, _ = order_place(user=trader, order=BTC)
    before = Position.objects.get(pk=order.position_id).liquidation_price

    drive(BTCUSD="63000")
    position_close(position_id=order.position_id, user=trader, size=Decimal("0.0781"))

    position = Position.objects.get(pk=order.position_id)
    armed = ProtectiveOrder.objects.get(position=position, kind="liquidation", status="armed")
    assert armed.trigger_price == position.liquidation_price
    assert position.liquidation_price == before  # half the size with half the collateral: same price
    # moved in place: the one liquidation trigger of the position, never cancelled and re-armed
    assert ProtectiveOrder.objects.filter(position=position, kind="liquidation").count() == 1
