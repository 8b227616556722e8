"""POST /api/v1/admin/paper/prices: staff drive the paper price; it flows like a real tick."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone
from django_redis import get_redis_connection

from conftest import bearer_client
from pricing.services.prices import price_cache_key
from providers import registry
from providers.base import OrderType, Side, VenueOrder, VenueOrderRequest
from providers.models import Provider
from providers.venues.paper.adapter import PaperVenue
from providers.venues.paper.services import paper_venue

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/paper/prices"


@pytest.fixture
def ops(staff_user):
    return bearer_client(staff_user)


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        email="ops@marqetfi.local", password="x", is_staff=True, is_superuser=True
    )


def _order(venue: PaperVenue, client_order_id: str) -> VenueOrder:
    order = venue.get_order(account_ref="paper:t", client_order_id=client_order_id)
    assert order is not None
    return order


@pytest.fixture(autouse=True)
def _no_cached_price():
    get_redis_connection("default").delete(price_cache_key("BTCUSD"), price_cache_key("EURUSD"))


def test_staff_set_a_price_and_get_the_new_quote(ops):
    # The clock stands still, so the walk cannot take its next step before the venue is asked.
    with time_machine.travel(timezone.now(), tick=False):
        response = ops.post(URL, {"symbol": "BTCUSD", "price": "70000"}, format="json")
        quote = paper_venue().prices(symbols=["BTCUSD"])["BTCUSD"]
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"symbol", "bid", "ask", "mid", "ts"}
    assert (body["symbol"], body["bid"], body["ask"]) == ("BTCUSD", "69993", "70007")
    assert Decimal(body["mid"]) == Decimal("70000")
    assert body["ts"].endswith("Z")
    assert quote.mid == Decimal("70000")


def test_a_set_price_is_cached_and_broadcast_like_a_real_tick(ops, stream_listener):
    stream_listener.subscribe("prices:EURUSD")
    ops.post(URL, {"symbol": "EURUSD", "price": "1.2"}, format="json")
    message = stream_listener.receive()
    assert message["symbol"] == "EURUSD"
    assert (message["bid"], message["ask"], message["provider"]) == ("1.19988", "1.20012", "paper")
    cached = json.loads(get_redis_connection("default").get(price_cache_key("EURUSD")))
    assert cached["bid"] == "1.19988" and cached["provider"] == "paper"


def test_a_set_price_that_crosses_a_resting_limit_fills_it_and_not_before(ops):
    venue = paper_venue()
    ops.post(URL, {"symbol": "BTCUSD", "price": "64000"}, format="json")
    order = venue.place_order(
        order=VenueOrderRequest(
            account_ref="paper:t",
            client_order_id="dip",
            symbol="BTCUSD",
            side=Side.LONG,
            type=OrderType.LIMIT,
            collateral=Decimal("100"),
            leverage=Decimal("5"),
            price=Decimal("62000"),
        )
    )
    assert order.status == "open"
    ops.post(URL, {"symbol": "BTCUSD", "price": "62010"}, format="json")  # ask 62016.3: above the limit
    assert _order(venue, "dip").status == "open"
    ops.post(URL, {"symbol": "BTCUSD", "price": "61990"}, format="json")  # ask 61996.2: through it
    filled = _order(venue, "dip")
    assert (filled.status, filled.avg_fill_price) == ("filled", Decimal("62000"))
    assert venue.positions(account_ref="paper:t")[0].entry_price == Decimal("62000")


def test_traders_and_anonymous_callers_are_refused(api_client, auth_client):
    assert api_client.post(URL, {"symbol": "BTCUSD", "price": "1"}, format="json").status_code == 401
    refused = auth_client.post(URL, {"symbol": "BTCUSD", "price": "1"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert paper_venue().prices(symbols=["BTCUSD"])["BTCUSD"].mid == Decimal("64000.0")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"symbol": "NOPEUSD", "price": "10"}, "unknown_symbol", "symbol"),
        ({"symbol": "BTCUSD", "price": "0"}, "validation_error", "price"),
        ({"symbol": "BTCUSD", "price": "-5"}, "validation_error", "price"),
        ({"symbol": "BTCUSD", "price": "cheap"}, "validation_error", "price"),
        ({"symbol": "BTCUSD"}, "validation_error", "price"),
        ({"symbol": "SPX", "price": "0.001"}, "invalid_price", "price"),
    ],
)
def test_bad_input_is_a_400_in_the_error_shape(ops, body, code, field):
    response = ops.post(URL, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and field in error["details"]


def test_a_switched_off_paper_venue_answers_409(ops):
    Provider.objects.create(name="paper", kind="venue", enabled=False)
    registry.reset_cache()
    response = ops.post(URL, {"symbol": "BTCUSD", "price": "70000"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "paper_venue_disabled"


def test_the_tick_hook_fills_resting_orders_on_paper_ticks_only(ops):
    from pricing.services.prices import price_tick_ingest

    venue = paper_venue()
    ops.post(URL, {"symbol": "BTCUSD", "price": "64000"}, format="json")
    venue.place_order(
        order=VenueOrderRequest(
            account_ref="paper:t",
            client_order_id="hooked",
            symbol="BTCUSD",
            side=Side.SHORT,
            type=OrderType.LIMIT,
            collateral=Decimal("100"),
            leverage=Decimal("5"),
            price=Decimal("66000"),
        )
    )
    with override_settings(PRICE_TICK_HOOKS=["providers.venues.paper.services.paper_tick_hook"]):
        for provider in ("lighter", "paper"):
            price_tick_ingest(
                symbol="BTCUSD", bid=Decimal("66100"), ask=Decimal("66110"), provider=provider, ts=venue.now()
            )
            if provider == "lighter":
                assert _order(venue, "hooked").status == "open"
    assert _order(venue, "hooked").status == "filled"
