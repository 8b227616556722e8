"""Real concurrency on PostgreSQL: two requests racing have exactly one effect."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from conftest import requires_postgres
from ledger.selectors import user_balances
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from trading.errors import PositionNotOpen
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.services.orders import OrderTerms, order_place
from trading.services.positions import position_close
from trading.triggers import firing

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

BTC = OrderTerms(
    symbol="BTCUSD",
    side="long",
    type="market",
    collateral=Decimal(1000),
    leverage=Decimal(10),
    client_order_id="race-1",
)


def at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``count`` threads released together; returns each result or exception."""
    barrier = threading.Barrier(count)

    def run(_: int) -> Any:
        barrier.wait()
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test inspects
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_the_same_client_order_id_twice_at_once_places_one_order(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")

    results = at_once(2, lambda: order_place(user=trader, order=BTC))

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(created for _, created in results) == [False, True]
    assert len({order.pk for order, _ in results}) == 1
    assert Order.objects.filter(user=trader).count() == 1
    assert user_balances(user=trader).margin == Decimal(1000)
    ledger_balanced()


def test_two_closes_at_once_close_once(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")
    order, _ = order_place(user=trader, order=BTC)

    results = at_once(2, lambda: position_close(position_id=order.position_id, user=trader))

    closed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, PositionNotOpen)]
    assert (len(closed), len(refused)) == (1, 1), results
    assert Position.objects.get(pk=order.position_id).status == "closed"
    assert Fill.objects.filter(position_id=order.position_id, kind="close").count() == 1
    ledger_balanced()


def test_a_manual_close_racing_its_stop_loss_closes_once(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")
    order, _ = order_place(
        user=trader,
        order=OrderTerms(**{**BTC.__dict__, "client_order_id": "race-2", "stop_loss": Decimal(63000)}),
    )
    stop = ProtectiveOrder.objects.get(position_id=order.position_id, kind="stop_loss")
    drive(BTCUSD="63500")  # above the stop: nothing fires yet

    def manual() -> Any:
        return position_close(position_id=order.position_id, user=trader)

    def trigger() -> Any:
        return firing.protective_fire(protective_id=stop.pk, bid=Decimal(62900), ask=Decimal(62900))

    barrier_work = iter([manual, trigger])
    lock = threading.Lock()

    def one() -> Any:
        with lock:
            work = next(barrier_work)
        return work()

    results = at_once(2, one)

    position = Position.objects.get(pk=order.position_id)
    assert position.status == "closed", results
    assert Fill.objects.filter(position=position, kind="close").count() == 1
    stop.refresh_from_db()
    # Either the trader's close won (the stop is cancelled, the trigger did nothing) or the stop
    # fired first (the trader is told the position is already closed).
    if isinstance(results[0], PositionNotOpen) or isinstance(results[1], PositionNotOpen):
        assert stop.status == "fired"
    else:
        assert stop.status == "cancelled"
    ledger_balanced()


def test_orders_and_closes_of_one_trader_at_once_neither_deadlock_nor_unbalance(
    trader, drive, ledger_balanced
):
    drive(BTCUSD="64000", ETHUSD="3000")
    first, _ = order_place(
        user=trader,
        order=OrderTerms(
            symbol="ETHUSD", side="long", type="market", collateral=Decimal(100), leverage=Decimal(5)
        ),
    )
    small = OrderTerms(
        symbol="BTCUSD", side="long", type="market", collateral=Decimal(20), leverage=Decimal(2)
    )
    jobs = iter(
        [lambda: [order_place(user=trader, order=small) for _ in range(4)] for _ in range(3)]
        + [lambda: position_close(position_id=first.position_id, user=trader, size=Decimal("0.01"))]
    )
    lock = threading.Lock()

    def one() -> Any:
        with lock:
            job = next(jobs)
        return job()

    results = at_once(4, one)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Order.objects.filter(user=trader, status="filled", symbol="BTCUSD").count() == 12
    ledger_balanced()
