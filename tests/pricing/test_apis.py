"""GET /pairs, GET /prices/{symbol} and GET /prices: shapes, filters, errors, /metrics."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from pricing.services.pairs import pairs_sync
from pricing.services.prices import price_tick_ingest
from providers import registry
from providers.base import MarketCategory
from providers.models import Provider
from tests.pricing.factories import PairListingFactory, TradingPairFactory
from tests.pricing.venues import market

pytestmark = pytest.mark.django_db

PRICE_FIELDS = {"symbol", "bid", "ask", "mid", "provider", "ts", "age_ms", "stale", "market"}


@pytest.fixture
def catalogue(venues):
    venues["alpha"].markets = [
        market("BTCUSD", tick_size="0.5", size_step="0.00001", min_collateral="5", max_leverage="50"),
        market("ETHUSD"),
    ]
    venues["beta"].markets = [
        market("BTCUSD", venue_symbol="BTC-USD"),
        market("EURUSD", MarketCategory.FOREX, tick_size="0.00001", max_leverage="100"),
    ]
    pairs_sync(provider="alpha")
    pairs_sync(provider="beta")
    venues["alpha"].quote("BTCUSD", "64000.50", "64001.5")
    venues["beta"].quote("EURUSD", "1.08501", "1.08503")
    return venues


# --- /pairs ---------------------------------------------------------------------------


def test_pairs_lists_one_row_per_venue_listing_with_decimal_strings(api_client, catalogue):
    response = api_client.get("/api/v1/pairs")

    assert response.status_code == 200
    body = response.json()
    assert body["next"] is None
    assert [(row["symbol"], row["provider"]) for row in body["results"]] == [
        ("BTCUSD", "alpha"),
        ("BTCUSD", "beta"),
        ("ETHUSD", "alpha"),
        ("EURUSD", "beta"),
    ]
    btc = body["results"][0]
    assert btc == {
        "symbol": "BTCUSD",
        "display_name": "BTC/USD",
        "category": "crypto",
        "provider": "alpha",
        "venue_symbol": "BTCUSD-PERP",
        "tick_size": "0.5",
        "size_step": "0.00001",
        "min_collateral": "5",
        "max_leverage": "50",
        "trading_hours": "24/7",
        "market": "open",
    }
    assert body["results"][3]["tick_size"] == "0.00001"
    assert body["results"][3]["market"] in ("open", "closed")


def test_pairs_filter_by_category_and_provider(api_client, catalogue):
    crypto_on_beta = api_client.get("/api/v1/pairs", {"category": "crypto", "provider": "beta"}).json()
    forex = api_client.get("/api/v1/pairs", {"category": "forex"}).json()

    assert [(row["symbol"], row["provider"]) for row in crypto_on_beta["results"]] == [("BTCUSD", "beta")]
    assert [row["symbol"] for row in forex["results"]] == ["EURUSD"]


def test_pairs_leave_out_inactive_listings_and_pairs(api_client, catalogue):
    catalogue["alpha"].markets = [market("BTCUSD")]
    pairs_sync(provider="alpha")  # alpha dropped ETHUSD
    PairListingFactory(pair=TradingPairFactory(symbol="DOGEUSD", active=False))

    symbols = {row["symbol"] for row in api_client.get("/api/v1/pairs").json()["results"]}

    assert symbols == {"BTCUSD", "EURUSD"}


def test_pairs_are_cursor_paginated(api_client, catalogue):
    first = api_client.get("/api/v1/pairs", {"limit": 3}).json()
    second = api_client.get(first["next"]).json()

    assert len(first["results"]) == 3
    assert [(row["symbol"], row["provider"]) for row in second["results"]] == [("EURUSD", "beta")]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("params", "field"), [({"category": "stocks"}, "category"), ({"provider": "x"}, "provider")]
)
def test_pairs_refuse_unknown_filters(api_client, catalogue, params, field):
    response = api_client.get("/api/v1/pairs", params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["details"]


# --- /prices/{symbol} -----------------------------------------------------------------


def test_a_price_has_the_contract_shape_with_decimal_strings(api_client, catalogue):
    response = api_client.get("/api/v1/prices/btcusd")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PRICE_FIELDS
    assert (body["symbol"], body["bid"], body["ask"], body["mid"]) == (
        "BTCUSD",
        "64000.5",
        "64001.5",
        "64001",
    )
    assert (body["provider"], body["stale"], body["market"]) == ("alpha", False, "open")
    assert isinstance(body["age_ms"], int) and body["age_ms"] >= 0
    assert body["ts"].endswith("Z")


def test_an_ingested_tick_is_what_the_api_answers(api_client, catalogue):
    ts = timezone.now() - timedelta(seconds=20)
    price_tick_ingest(symbol="BTCUSD", bid=Decimal("63000.1"), ask=Decimal("63000.3"), provider="feed", ts=ts)

    body = api_client.get("/api/v1/prices/BTCUSD").json()

    assert (body["bid"], body["mid"], body["provider"], body["stale"]) == ("63000.1", "63000.2", "feed", True)
    assert body["age_ms"] >= 20_000
    assert catalogue["alpha"].price_calls == []


def test_max_age_ms_on_one_price_refetches(api_client, catalogue):
    ts = timezone.now() - timedelta(seconds=20)
    price_tick_ingest(symbol="BTCUSD", bid=Decimal("63000.1"), ask=Decimal("63000.3"), provider="feed", ts=ts)

    body = api_client.get("/api/v1/prices/BTCUSD", {"max_age_ms": 1000}).json()

    assert body["provider"] == "alpha"


def test_an_unknown_symbol_is_404_unknown_symbol(api_client, catalogue):
    response = api_client.get("/api/v1/prices/NOPEUSD")

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "unknown_symbol",
            "message": "No tradable pair has this symbol.",
            "details": {"symbol": "NOPEUSD"},
        }
    }


def test_venues_down_is_503_price_unavailable(api_client, catalogue):
    catalogue["beta"].failure = RuntimeError("adapter bug")

    response = api_client.get("/api/v1/prices/EURUSD")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "price_unavailable"
    assert error["details"]["attempts"] == [{"venue": "beta", "reason": "venue_error"}]
    assert "adapter bug" not in response.content.decode()


def test_no_usable_venue_is_503_no_venue_available(api_client, catalogue):
    Provider.objects.create(name="beta", kind="venue", enabled=False)
    registry.reset_cache()

    response = api_client.get("/api/v1/prices/EURUSD")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_venue_available"


# --- /prices?symbols= -----------------------------------------------------------------


def test_bulk_prices_answer_the_good_symbols_and_an_error_for_each_other(api_client, catalogue):
    catalogue["beta"].failure = RuntimeError("adapter bug")

    response = api_client.get("/api/v1/prices", {"symbols": "BTCUSD, eurusd,NOPE,BTC/USD,,BTCUSD"})

    assert response.status_code == 200
    body = response.json()
    assert [price["symbol"] for price in body["prices"]] == ["BTCUSD"]
    assert set(body["prices"][0]) == PRICE_FIELDS
    assert body["prices"][0]["bid"] == "64000.5"
    assert {symbol: error["code"] for symbol, error in body["errors"].items()} == {
        "EURUSD": "price_unavailable",
        "NOPE": "unknown_symbol",
        "BTC/USD": "unknown_symbol",
    }
    assert set(body["errors"]["NOPE"]) == {"code", "message", "details"}


def test_bulk_prices_make_one_venue_call_per_venue(api_client, catalogue):
    catalogue["alpha"].quote("ETHUSD", "3200.1", "3200.3")

    body = api_client.get("/api/v1/prices", {"symbols": "BTCUSD,ETHUSD,EURUSD"}).json()

    assert body["errors"] == {}
    assert [sorted(call) for call in catalogue["alpha"].price_calls] == [["BTCUSD", "ETHUSD"]]
    assert catalogue["beta"].price_calls == [["EURUSD"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "symbols"),
        ({"symbols": " , "}, "symbols"),
        ({"symbols": ",".join(f"S{n}USD" for n in range(101))}, "symbols"),
        ({"symbols": "BTCUSD", "max_age_ms": "-1"}, "max_age_ms"),
    ],
)
def test_bulk_prices_refuse_a_malformed_request(api_client, catalogue, params, field):
    response = api_client.get("/api/v1/prices", params)

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_a_hundred_symbols_are_accepted(api_client, catalogue):
    symbols = ["BTCUSD", *(f"S{n}USD" for n in range(99))]

    body = api_client.get("/api/v1/prices", {"symbols": ",".join(symbols)}).json()

    assert [price["symbol"] for price in body["prices"]] == ["BTCUSD"]
    assert len(body["errors"]) == 99


def test_cache_hit_and_miss_counters_are_in_metrics(api_client, catalogue):
    api_client.get("/api/v1/prices/BTCUSD")
    api_client.get("/api/v1/prices/BTCUSD")

    metrics = api_client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {django_settings.METRICS_TOKEN}"
    ).content.decode()

    assert 'marqetfi_price_cache_hits_total{category="crypto"}' in metrics
    assert 'marqetfi_price_cache_misses_total{category="forex"}' in metrics
