"""Execution at the venue: fallbacks recorded on the order, venue rejections, lost answers
(``unknown``) settled by the reconciler asking the venue, never by sending twice."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django_redis import get_redis_connection

from conftest import bearer_client
from ledger.selectors import user_balances
from pricing.services.pairs import pairs_sync
from providers import registry
from providers.models import PaperOrder, RoutingRule
from providers.services.routing import routing_rule_update
from tests.trading.venues import FAULTS, faults
from trading import tasks
from trading.models import Order, Position
from trading.services.orders import OrderTerms, order_place, orders_reconcile

pytestmark = pytest.mark.django_db

BTC = OrderTerms(symbol="BTCUSD", side="long", type="market", collateral=Decimal(1000), leverage=Decimal(10))


@pytest.fixture
def flaky_first(paper_market: None) -> Iterator[None]:
    """Crypto routes to the flaky venue first, the paper venue second."""
    catalogue = copy.deepcopy(settings.PROVIDERS)
    catalogue["flaky"] = {**catalogue["paper"], "class": "tests.trading.venues.FlakyPaperVenue"}
    with override_settings(PROVIDERS=catalogue):
        registry.reset_cache()
        pairs_sync(provider="flaky")
        routing_rule_update(rule_id=RoutingRule.objects.get(value="crypto").pk, venues=["flaky", "paper"])
        FAULTS.update(place="ok", quotes="ok")
        yield
        FAULTS.update(place="ok", quotes="ok")
    registry.reset_cache()


def test_a_venue_that_cannot_be_reached_falls_back_to_the_next_and_says_so(trader, drive, flaky_first):
    drive(BTCUSD="64000")
    faults(place="refuse")

    order, _ = order_place(user=trader, order=BTC)

    assert order.status == "filled"
    assert order.provider == "paper"
    assert order.routing["candidates"] == ["flaky", "paper"]
    assert order.routing["attempts"] == [
        {"provider": "flaky", "error": "connect failed: ConnectError: refused"},
        {"provider": "paper", "status": "filled"},
    ]


def test_a_venue_rejection_releases_the_collateral_and_records_the_reason(
    trader, drive, flaky_first, ledger_balanced
):
    drive(BTCUSD="64000")
    faults(place="reject")

    order, _ = order_place(user=trader, order=BTC)

    assert (order.status, order.reject_code, order.reject_reason) == (
        "rejected",
        "venue_rejected",
        "order size too small",
    )
    assert user_balances(user=trader).available == Decimal(10000)
    assert Position.objects.count() == 0
    ledger_balanced()


def test_a_lost_answer_leaves_the_order_unknown_until_the_venue_is_asked(
    trader, drive, flaky_first, ledger_balanced
):
    drive(BTCUSD="64000")
    faults(place="timeout_after_fill")

    order, _ = order_place(user=trader, order=BTC)

    assert order.status == "unknown"
    assert order.routing["attempts"] == [{"provider": "flaky", "error": "POST /orders timed out after 5 s"}]
    assert PaperOrder.objects.count() == 1  # sent once; never to the fallback
    assert user_balances(user=trader).margin == Decimal("1005")

    settled = orders_reconcile(older_than=timedelta(0))

    order.refresh_from_db()
    assert settled == 1
    assert order.status == "filled"
    assert Position.objects.get(user=trader).size == Decimal("0.1562")
    assert PaperOrder.objects.count() == 1
    ledger_balanced()


def test_an_order_the_venue_never_received_is_rejected_by_the_reconciler(
    trader, drive, flaky_first, ledger_balanced
):
    drive(BTCUSD="64000")
    faults(place="timeout_before")
    order, _ = order_place(user=trader, order=BTC)
    assert order.status == "unknown"

    orders_reconcile(older_than=timedelta(0))

    order.refresh_from_db()
    assert (order.status, order.reject_code) == ("rejected", "venue_never_received")
    assert user_balances(user=trader).available == Decimal(10000)
    ledger_balanced()


def test_two_identical_client_order_ids_make_one_order(trader, drive):
    drive(BTCUSD="64000")
    first, created = order_place(user=trader, order=OrderTerms(**{**BTC.__dict__, "client_order_id": "x-1"}))
    again, created_again = order_place(
        user=trader, order=OrderTerms(**{**BTC.__dict__, "client_order_id": "x-1"})
    )

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Order.objects.filter(user=trader).count() == 1


def test_the_beat_task_reconciles_orders_left_unknown_for_a_while(trader, drive, flaky_first):
    drive(BTCUSD="64000")
    faults(place="timeout_after_fill")
    order, _ = order_place(user=trader, order=BTC)

    assert tasks.orders_reconcile.apply().get() == 0  # too recent: the venue may still be working on it
    with time_machine.travel(timezone.now() + timedelta(seconds=30), tick=False):
        assert tasks.orders_reconcile.apply().get() == 1

    order.refresh_from_db()
    assert order.status == "filled"


def test_a_stale_price_refuses_the_order_and_changes_nothing(trader, drive, flaky_first):
    routing_rule_update(rule_id=RoutingRule.objects.get(value="crypto").pk, venues=["flaky"])
    faults(quotes="old")
    price_cache_clear()
    client = bearer_client(trader)

    response = client.post(
        "/api/v1/orders",
        {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "100", "leverage": "2"},
        format="json",
    )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "stale_price"
    assert Order.objects.count() == 0
    assert user_balances(user=trader).available == Decimal(10000)


def price_cache_clear() -> None:
    redis = get_redis_connection("default")
    for key in redis.scan_iter("marqetfi:price:*"):
        redis.delete(key)
