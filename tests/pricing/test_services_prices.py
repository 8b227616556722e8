"""The price service against real Redis and counting venues: cache, batching, single flight,
fallback, staleness and market hours, tick ingestion."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from marqetfi.core.app_settings.services import app_setting_set
from pricing.errors import (
    InvalidPrice,
    MarketClosed,
    NoVenueAvailable,
    PriceUnavailable,
    StalePrice,
    UnknownSymbol,
)
from pricing.services import prices
from pricing.services.prices import (
    TickHookRunner,
    price_for_execution,
    price_get,
    price_tick_ingest,
    prices_get,
)
from providers import registry
from providers.breaker import call_provider
from providers.errors import ProviderError
from providers.models import Provider
from tests.pricing import hooks
from tests.pricing.factories import TradingPairFactory

SATURDAY = datetime(2024, 1, 6, 12, tzinfo=UTC)
WEDNESDAY = datetime(2024, 1, 3, 12, tzinfo=UTC)


def venue_down(name: str) -> ProviderError:
    return ProviderError(name, "503 from upstream", status_code=503, retryable=True)


@pytest.fixture
def pairs(db: None) -> None:
    for symbol in ("BTCUSD", "ETHUSD"):
        TradingPairFactory(symbol=symbol, category="crypto")
    TradingPairFactory(symbol="EURUSD", category="forex")
    TradingPairFactory(symbol="XAUUSD", category="commodities")


@pytest.fixture
def quotes(venues, pairs):
    """alpha (crypto primary) quotes the crypto pairs; beta the others."""
    venues["alpha"].quote("BTCUSD", "64000.5", "64001.5")
    venues["alpha"].quote("ETHUSD", "3200.1", "3200.3")
    venues["beta"].quote("EURUSD", "1.08501", "1.08503")
    venues["beta"].quote("XAUUSD", "2650.10", "2650.40")
    return venues


def ingest(symbol: str, bid: str, ask: str, *, age: timedelta = timedelta(0), provider: str = "feed") -> bool:
    return price_tick_ingest(
        symbol=symbol, bid=Decimal(bid), ask=Decimal(ask), provider=provider, ts=timezone.now() - age
    )


# --- The cache ------------------------------------------------------------------------


def test_a_cache_hit_does_not_ask_the_venue(quotes):
    first = price_get("BTCUSD")
    second = price_get("btcusd")

    assert quotes["alpha"].price_calls == [["BTCUSD"]]
    assert (second.bid, second.ask, second.ts, second.provider) == (first.bid, first.ask, first.ts, "alpha")


def test_the_entry_expires_after_the_ttl_app_setting_and_is_fetched_again(
    quotes, redis_conn, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        app_setting_set(key="price_cache_ttl_seconds", value=1, actor=None)

    price_get("BTCUSD")
    assert 0 < redis_conn.pttl(prices.price_cache_key("BTCUSD")) <= 1000
    price_get("BTCUSD")
    assert len(quotes["alpha"].price_calls) == 1

    time.sleep(1.1)
    price_get("BTCUSD")
    assert len(quotes["alpha"].price_calls) == 2


def test_the_default_ttl_is_thirty_seconds(quotes, redis_conn):
    price_get("BTCUSD")
    assert 29_000 < redis_conn.pttl(prices.price_cache_key("BTCUSD")) <= 30_000


def test_hits_and_misses_are_counted_per_category(quotes):
    def sample(name: str, category: str) -> float:
        return REGISTRY.get_sample_value(name, {"category": category}) or 0.0

    hits, misses = (
        sample("marqetfi_price_cache_hits_total", "crypto"),
        sample("marqetfi_price_cache_misses_total", "crypto"),
    )

    prices_get(["BTCUSD", "ETHUSD"])
    prices_get(["BTCUSD", "ETHUSD", "EURUSD"])

    assert sample("marqetfi_price_cache_misses_total", "crypto") - misses == 2
    assert sample("marqetfi_price_cache_hits_total", "crypto") - hits == 2


def test_max_age_refetches_a_cached_price_older_than_asked(quotes):
    ingest("BTCUSD", "63000", "63001", age=timedelta(seconds=2))

    assert price_get("BTCUSD", max_age_ms=10_000).provider == "feed"
    assert quotes["alpha"].price_calls == []

    refreshed = price_get("BTCUSD", max_age_ms=1000)
    assert (refreshed.provider, refreshed.bid) == ("alpha", Decimal("64000.5"))
    assert quotes["alpha"].price_calls == [["BTCUSD"]]


# --- Bulk -----------------------------------------------------------------------------


def test_bulk_misses_make_one_call_per_venue_and_the_venues_are_asked_in_parallel(quotes):
    quotes["alpha"].delay_seconds = quotes["beta"].delay_seconds = 0.4

    started = time.monotonic()
    answered, errors = prices_get(["EURUSD", "BTCUSD", "XAUUSD", "ETHUSD"])
    elapsed = time.monotonic() - started

    assert errors == {}
    assert [price.symbol for price in answered] == ["EURUSD", "BTCUSD", "XAUUSD", "ETHUSD"]
    assert [sorted(call) for call in quotes["alpha"].price_calls] == [["BTCUSD", "ETHUSD"]]
    assert [sorted(call) for call in quotes["beta"].price_calls] == [["EURUSD", "XAUUSD"]]
    assert elapsed < 0.75, "the two venues were asked one after the other"


def test_bulk_asks_venues_only_for_what_the_cache_lacks(quotes):
    price_get("BTCUSD")

    prices_get(["BTCUSD", "ETHUSD"])

    assert quotes["alpha"].price_calls == [["BTCUSD"], ["ETHUSD"]]


def test_a_bulk_query_answers_every_good_symbol_when_others_are_unknown_or_their_venue_is_down(quotes):
    quotes["beta"].failure = venue_down("beta")

    answered, errors = prices_get(["BTCUSD", "NOPEUSD", "EURUSD", "bad$sym", "btcusd", " "])

    assert [price.symbol for price in answered] == ["BTCUSD"]
    assert {symbol: type(error) for symbol, error in errors.items()} == {
        "NOPEUSD": UnknownSymbol,
        "EURUSD": PriceUnavailable,
        "BAD$SYM": UnknownSymbol,
    }
    assert errors["EURUSD"].details["attempts"] == [{"venue": "beta", "reason": "venue_error"}]


# --- Single flight --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_misses_of_one_symbol_make_one_venue_call(venues):
    TradingPairFactory(symbol="BTCUSD", category="crypto")
    venues["alpha"].quote("BTCUSD", "64000.5", "64001.5")
    venues["alpha"].delay_seconds = 0.2
    start = threading.Barrier(50)
    results: list[Any] = []

    def request() -> None:
        try:
            start.wait()
            results.append(price_get("BTCUSD"))
        except Exception as exc:  # noqa: BLE001 - a failed request is a result the test reports
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(venues["alpha"].price_calls) == 1
    assert len(results) == 50
    assert {(price.symbol, price.bid, price.provider) for price in results} == {
        ("BTCUSD", Decimal("64000.5"), "alpha")
    }


def test_a_miss_waits_for_another_process_fetching_the_same_symbol(quotes, redis_conn):
    lock = prices._lock_key("BTCUSD")
    redis_conn.set(lock, "another-process", px=5000)

    def other_process_finishes() -> None:
        time.sleep(0.2)
        ingest("BTCUSD", "64100", "64101", provider="alpha")
        redis_conn.delete(lock)

    finisher = threading.Thread(target=other_process_finishes)
    finisher.start()
    price = price_get("BTCUSD")
    finisher.join()

    assert price.bid == Decimal("64100")
    assert quotes["alpha"].price_calls == []


def test_a_waiter_answers_the_failure_of_the_fetch_it_waited_on(quotes, redis_conn):
    lock = prices._lock_key("BTCUSD")
    redis_conn.set(lock, "another-process", px=5000)
    attempts = [{"venue": "alpha", "reason": "circuit_open"}, {"venue": "beta", "reason": "no_quote"}]

    def other_process_fails() -> None:
        time.sleep(0.2)
        failure = {"code": "price_unavailable", "message": "none", "details": {"attempts": attempts}}
        redis_conn.set(prices._failure_key("BTCUSD"), json.dumps(failure), px=2000)
        redis_conn.delete(lock)

    finisher = threading.Thread(target=other_process_fails)
    finisher.start()
    with pytest.raises(PriceUnavailable) as caught:
        price_get("BTCUSD")
    finisher.join()

    assert caught.value.details["attempts"] == attempts
    assert quotes["alpha"].price_calls == []


def test_waiting_for_another_fetch_is_bounded(quotes, redis_conn, settings):
    settings.PRICE_FILL_WAIT_MS = 200
    redis_conn.set(prices._lock_key("BTCUSD"), "a-stuck-process", px=5000)

    started = time.monotonic()
    with pytest.raises(PriceUnavailable) as caught:
        price_get("BTCUSD")

    assert 0.2 <= time.monotonic() - started < 1.0
    assert caught.value.details["reason"] == "timeout_waiting_for_fetch"
    assert quotes["alpha"].price_calls == []


# --- Fallback -------------------------------------------------------------------------


def test_the_next_venue_answers_when_the_primary_fails(quotes):
    quotes["alpha"].failure = venue_down("alpha")
    quotes["beta"].quote("BTCUSD", "64002", "64003")

    price = price_get("BTCUSD")

    assert (price.provider, price.bid) == ("beta", Decimal("64002"))
    assert quotes["alpha"].price_calls == [["BTCUSD"]]
    assert quotes["beta"].price_calls == [["BTCUSD"]]


def test_the_next_venue_answers_what_the_primary_does_not_quote(quotes):
    quotes["beta"].quote("SOLUSD", "150", "150.1")
    TradingPairFactory(symbol="SOLUSD", category="crypto")

    answered, errors = prices_get(["BTCUSD", "SOLUSD"])

    assert errors == {}
    assert {price.symbol: price.provider for price in answered} == {"BTCUSD": "alpha", "SOLUSD": "beta"}
    assert quotes["beta"].price_calls == [["SOLUSD"]]


def test_a_primary_with_an_open_circuit_is_skipped_without_a_call(quotes):
    def failing() -> None:
        raise venue_down("alpha")

    for _ in range(5):
        with pytest.raises(ProviderError):
            call_provider("alpha", failing)
    quotes["beta"].quote("BTCUSD", "64002", "64003")

    assert price_get("BTCUSD").provider == "beta"
    assert quotes["alpha"].price_calls == []


def test_a_venue_whose_adapter_cannot_be_built_fails_over_like_an_outage(quotes, settings):
    settings.PROVIDERS = {
        **settings.PROVIDERS,
        "beta": {**settings.PROVIDERS["beta"], "class": "tests.pricing.missing.Venue"},
    }
    registry.reset_cache()

    answered, errors = prices_get(["BTCUSD", "EURUSD"])

    assert [price.symbol for price in answered] == ["BTCUSD"]
    assert errors["EURUSD"].details["attempts"] == [{"venue": "beta", "reason": "venue_error"}]


def test_every_venue_failing_is_price_unavailable_with_each_attempt(quotes):
    quotes["alpha"].failure = venue_down("alpha")

    with pytest.raises(PriceUnavailable) as caught:
        price_get("BTCUSD")

    assert caught.value.details == {
        "symbol": "BTCUSD",
        "attempts": [{"venue": "alpha", "reason": "venue_error"}, {"venue": "beta", "reason": "no_quote"}],
    }


def test_no_usable_venue_is_no_venue_available(quotes):
    Provider.objects.create(name="beta", kind="venue", enabled=False)
    registry.reset_cache()

    with pytest.raises(NoVenueAvailable):
        price_get("EURUSD")
    assert quotes["beta"].price_calls == []


def test_an_unknown_or_switched_off_pair_is_unknown_symbol(quotes):
    TradingPairFactory(symbol="DOGEUSD", category="crypto", active=False)

    for symbol in ("NOPEUSD", "DOGEUSD", ""):
        with pytest.raises(UnknownSymbol):
            price_get(symbol)


# --- Staleness and market hours ----------------------------------------------------------


def test_every_price_carries_its_venue_time_age_staleness_and_market(quotes):
    quotes["alpha"].quote_age = timedelta(seconds=2)

    price = price_get("BTCUSD")

    assert price.provider == "alpha"
    assert 2000 <= price.age_ms < 4000
    assert price.stale is False  # crypto's limit is 5 s
    assert price.market == "open"
    assert price.mid == Decimal("64001.0")


def test_staleness_limits_differ_per_category(quotes):
    quotes["alpha"].quote_age = quotes["beta"].quote_age = timedelta(seconds=8)

    answered, _ = prices_get(["BTCUSD", "EURUSD"])

    assert {price.symbol: price.stale for price in answered} == {"BTCUSD": True, "EURUSD": False}


def test_a_stale_price_is_refused_for_execution(quotes):
    quotes["alpha"].quote_age = timedelta(seconds=60)

    with pytest.raises(StalePrice) as caught:
        price_for_execution("BTCUSD")

    assert caught.value.code == "stale_price" and caught.value.status_code == 503
    assert caught.value.details["limit_ms"] == 5000
    assert caught.value.details["age_ms"] >= 60_000
    assert quotes["alpha"].price_calls == [["BTCUSD"]]


def test_execution_refetches_a_cached_price_too_old_to_trade_on(quotes):
    ingest("BTCUSD", "60000", "60001", age=timedelta(seconds=30))

    price = price_for_execution("BTCUSD")

    assert (price.provider, price.bid, price.stale) == ("alpha", Decimal("64000.5"), False)
    assert quotes["alpha"].price_calls == [["BTCUSD"]]


def test_execution_uses_a_fresh_cached_price_without_asking_the_venue(quotes):
    ingest("BTCUSD", "64010", "64011")

    assert price_for_execution("BTCUSD").bid == Decimal("64010")
    assert quotes["alpha"].price_calls == []


def test_a_weekday_market_is_closed_for_execution_at_the_weekend(quotes):
    with pytest.raises(MarketClosed) as caught:
        price_for_execution("EURUSD", at=SATURDAY)

    assert (caught.value.code, caught.value.status_code) == ("market_closed", 409)
    assert quotes["beta"].price_calls == []
    assert price_for_execution("EURUSD", at=WEDNESDAY).symbol == "EURUSD"
    assert price_for_execution("BTCUSD", at=SATURDAY).symbol == "BTCUSD"


def test_a_market_the_venue_reports_closed_is_closed(quotes):
    quotes["beta"].market_open = False

    assert price_get("XAUUSD").market == "closed"
    with pytest.raises(MarketClosed):
        price_for_execution("XAUUSD", at=WEDNESDAY)


# --- Ingestion --------------------------------------------------------------------------


def test_an_ingested_tick_is_cached_broadcast_and_handed_to_the_hooks(quotes, settings, stream_listener):
    settings.PRICE_TICK_HOOKS = ["tests.pricing.hooks.explode", "tests.pricing.hooks.record"]
    hooks.RECEIVED.clear()
    stream_listener.subscribe("prices:BTCUSD")
    ts = timezone.now()

    assert price_tick_ingest(
        symbol="BTCUSD", bid=Decimal("64000.50"), ask=Decimal("64001.5"), provider="alpha", ts=ts
    )
    message = stream_listener.receive()

    assert message == {
        "symbol": "BTCUSD",
        "bid": "64000.5",
        "ask": "64001.5",
        "mid": "64001",
        "ts": ts.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "provider": "alpha",
        "market_open": True,
    }
    [tick] = hooks.RECEIVED
    assert (tick.symbol, tick.bid, tick.ask, tick.ts) == (
        "BTCUSD",
        Decimal("64000.50"),
        Decimal("64001.5"),
        ts,
    )
    assert price_get("BTCUSD").bid == Decimal("64000.50")
    assert quotes["alpha"].price_calls == []


def test_a_tick_older_than_the_cached_one_is_dropped(quotes, settings):
    settings.PRICE_TICK_HOOKS = ["tests.pricing.hooks.record"]
    hooks.RECEIVED.clear()
    assert ingest("BTCUSD", "64000", "64001")

    assert ingest("BTCUSD", "63000", "63001", age=timedelta(seconds=1)) is False

    assert price_get("BTCUSD").bid == Decimal("64000")
    assert len(hooks.RECEIVED) == 1


@pytest.mark.parametrize(
    ("bid", "ask", "ts"),
    [
        (Decimal("0"), Decimal("1"), datetime.now(UTC)),
        (Decimal("2"), Decimal("1"), datetime.now(UTC)),
        (64000.5, Decimal("64001"), datetime.now(UTC)),
        (Decimal("NaN"), Decimal("1"), datetime.now(UTC)),
        (Decimal("1"), Decimal("2"), datetime(2024, 1, 1)),  # noqa: DTZ001
    ],
)
def test_a_bad_tick_is_refused(quotes, bid, ask, ts):
    with pytest.raises(InvalidPrice):
        price_tick_ingest(symbol="BTCUSD", bid=bid, ask=ask, provider="feed", ts=ts)


def test_a_tick_for_a_malformed_symbol_is_refused(quotes):
    with pytest.raises(UnknownSymbol):
        price_tick_ingest(
            symbol="BTC USD", bid=Decimal("1"), ask=Decimal("2"), provider="feed", ts=timezone.now()
        )


def test_hooks_on_a_runner_never_hold_back_another_symbols_cache_write_nor_skip_a_tick(quotes, settings):
    settings.PRICE_TICK_HOOKS = ["tests.pricing.hooks.gated"]
    hooks.RECEIVED.clear()
    hooks.GATE.clear()
    runner = TickHookRunner(2)
    start = timezone.now()
    prices = {"BTCUSD": ["64000", "63000", "62000"], "ETHUSD": ["3200", "3190"]}
    try:
        for n in range(3):
            for symbol, quotes_of in prices.items():
                if n < len(quotes_of):
                    price = Decimal(quotes_of[n])
                    assert price_tick_ingest(
                        symbol=symbol,
                        bid=price,
                        ask=price,
                        provider="alpha",
                        ts=start + timedelta(milliseconds=n),
                        hooks=runner,
                    )
        # BTCUSD's hook is stuck on its first tick; every tick is cached all the same.
        assert price_get("BTCUSD").bid == Decimal("62000")
        assert price_get("ETHUSD").bid == Decimal("3190")
        assert all(tick.symbol != "BTCUSD" for tick in hooks.RECEIVED)
    finally:
        hooks.GATE.set()
        runner.stop(10)

    seen = {symbol: [tick.bid for tick in hooks.RECEIVED if tick.symbol == symbol] for symbol in prices}
    assert seen == {symbol: [Decimal(p) for p in quotes_of] for symbol, quotes_of in prices.items()}
