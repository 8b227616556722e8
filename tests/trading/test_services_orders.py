"""Cancelling every resting limit order of a trader at once (``orders_resting_cancel_for_user``):
each as a manual cancel would, the position's protection left armed, nobody else's touched."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction

from conftest import requires_postgres
from ledger.checks import ledger_check
from ledger.selectors import user_balances
from ledger.services import balance_adjust
from marqetfi.core.models import Event
from tests.accounts.factories import UserFactory
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from tests.trading.fixtures_triggers import index_members, place
from trading.models import Order, Position, ProtectiveOrder
from trading.services.orders import orders_resting_cancel_for_user, position_close_limit

pytestmark = pytest.mark.django_db(transaction=True)


def cancelled_events(user: Any) -> list[Event]:
    return list(Event.objects.filter(user=user, type="order.cancelled").order_by("seq"))


def test_resting_limit_orders_are_cancelled_and_their_collateral_released(funded_trader, price_to):
    price_to("64000")
    position_order = place(funded_trader, stop_loss="62000")
    before = user_balances(user=funded_trader)
    buy = place(funded_trader, type="limit", price="60000")
    sell = place(funded_trader, type="limit", side="short", price="70000")
    assert (buy.status, sell.status) == ("open", "open")
    assert user_balances(user=funded_trader).available < before.available

    assert orders_resting_cancel_for_user(user=funded_trader) == 2

    assert set(Order.objects.filter(pk__in=[buy.pk, sell.pk]).values_list("status", flat=True)) == {
        "cancelled"
    }
    after = user_balances(user=funded_trader)
    assert (after.available, after.margin) == (before.available, before.margin)
    assert ledger_check() == []
    assert {e.data["id"] for e in cancelled_events(funded_trader)} == {str(buy.pk), str(sell.pk)}
    stop = ProtectiveOrder.objects.get(position_id=position_order.position_id, kind="stop_loss")
    assert stop.status == "armed"
    assert index_members() == {"bid_below": {f"p:{stop.pk}"}}  # the orders left the index, the stop stayed


def test_a_resting_limit_close_is_cancelled_too_and_the_position_stays_open(funded_trader, price_to):
    price_to("64000")
    position_order = place(funded_trader, take_profit="70000")
    close = position_close_limit(
        position_id=position_order.position_id,
        user=funded_trader,
        price=Decimal(68000),
        size=None,
        rounding=None,
    )

    assert orders_resting_cancel_for_user(user=funded_trader) == 1

    close.refresh_from_db()
    assert close.status == "cancelled"
    assert Position.objects.get(pk=position_order.position_id).status == "open"
    assert (
        ProtectiveOrder.objects.get(position_id=position_order.position_id, kind="take_profit").status
        == "armed"
    )
    assert ledger_check() == []


def test_another_traders_resting_orders_are_untouched(funded_trader, staff, price_to):
    price_to("64000")
    other: Any = UserFactory()
    balance_adjust(user=other, amount=Decimal(5000), reason="test funding", actor=staff)
    theirs = place(other, type="limit", price="60000")
    place(funded_trader, type="limit", price="61000")
    their_balances = user_balances(user=other)

    assert orders_resting_cancel_for_user(user=funded_trader) == 1

    theirs.refresh_from_db()
    assert theirs.status == "open"
    assert user_balances(user=other) == their_balances
    assert cancelled_events(other) == []


def test_cancelling_again_cancels_nothing_more(funded_trader, price_to):
    price_to("64000")
    place(funded_trader, type="limit", price="60000")
    assert orders_resting_cancel_for_user(user=funded_trader) == 1
    balances = user_balances(user=funded_trader)

    assert orders_resting_cancel_for_user(user=funded_trader) == 0

    assert user_balances(user=funded_trader) == balances
    assert len(cancelled_events(funded_trader)) == 1
    assert ledger_check() == []


def test_an_order_already_executing_is_left_alone(funded_trader, price_to):
    price_to("64000")
    executing = place(funded_trader, type="limit", price="60000")
    Order.objects.filter(pk=executing.pk).update(status=Order.Status.PENDING)  # the market reached it

    assert orders_resting_cancel_for_user(user=funded_trader) == 0

    executing.refresh_from_db()
    assert executing.status == "pending"


@requires_postgres
def test_an_order_that_starts_executing_meanwhile_keeps_its_state_and_the_others_still_go(
    funded_trader, price_to, caplog
):
    """A real race: another transaction holds the first order's row and moves it to
    ``pending`` (the market reached it) while the cancel-all waits for that row."""
    price_to("64000")
    first = place(funded_trader, type="limit", price="60000")
    second = place(funded_trader, type="limit", price="59000")
    stuck = min(first.pk, second.pk)
    locked, release = threading.Event(), threading.Event()

    def executing_elsewhere() -> None:
        try:
            with transaction.atomic():
                Order.objects.select_for_update().get(pk=stuck)
                locked.set()
                release.wait(10)
                Order.objects.filter(pk=stuck).update(status=Order.Status.PENDING)
        finally:
            connection.close()

    other = threading.Thread(target=executing_elsewhere)
    other.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()  # commits while the cancel-all waits on the row

    assert orders_resting_cancel_for_user(user=funded_trader) == 1
    other.join(10)

    statuses = dict(Order.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "status"))
    assert statuses[stuck] == "pending"
    assert sorted(statuses.values()) == ["cancelled", "pending"]
    assert f"resting order {stuck} not cancelled" in caplog.text
    assert ledger_check() == []
