"""The paper venue's prices: a deterministic walk shared through Redis, driven by hand, or a mirror."""

from __future__ import annotations

import copy
import itertools
import time
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django_redis import get_redis_connection

from providers import registry
from providers.base import Quote
from providers.breaker import breaker_reset
from providers.errors import ProviderError
from providers.venues.paper.markets import PAPER_PAIRS
from providers.venues.paper.walk import ANCHORS_KEY, BLOCK_SECONDS
from tests.providers.venues import ListingNothingVenue
from tests.venues.paper.conftest import Clock, make_venue, pin

SYMBOLS = ["BTCUSD", "EURUSD", "SPX", "XAUUSD", "DOGEUSD"]


def test_two_separately_built_adapters_quote_the_same_prices(clock):
    first, second = make_venue(clock), make_venue(clock)
    for step in (0, 1, 7, 299, 1, 450, 3):
        clock.advance(step)
        assert first.prices(symbols=SYMBOLS) == second.prices(symbols=SYMBOLS)


def test_a_process_asked_every_second_agrees_with_one_asking_once(clock):
    steady = make_venue(clock)
    for _ in range(2 * BLOCK_SECONDS + 17):
        clock.advance(1)
        steady.prices(symbols=["ETHUSD"])
    assert make_venue(clock).prices(symbols=["ETHUSD"]) == steady.prices(symbols=["ETHUSD"])


def test_the_price_does_not_depend_on_whether_a_reader_stored_the_block_anchors(clock):
    redis = get_redis_connection("default")
    make_venue(clock).prices(symbols=["SOLUSD"])
    seeded = redis.hgetall(ANCHORS_KEY)
    clock.advance(3 * BLOCK_SECONDS + 42)

    walked = make_venue(clock).prices(symbols=["SOLUSD"])
    assert redis.hgetall(ANCHORS_KEY) != seeded  # the reader stored the anchor it reached
    redis.delete(ANCHORS_KEY)
    redis.hset(ANCHORS_KEY, mapping=seeded)
    assert make_venue(clock).prices(symbols=["SOLUSD"]) == walked


def test_a_fresh_pair_starts_near_its_realistic_level(venue):
    quotes = venue.prices(symbols=["BTCUSD", "EURUSD", "XAUUSD"])
    assert quotes["BTCUSD"].mid == Decimal("64000.0")
    assert quotes["EURUSD"].mid == Decimal("1.08500")
    assert quotes["XAUUSD"].mid == Decimal("2350.00")


def test_the_walk_moves_every_second_within_the_volatility(clock):
    venue = make_venue(clock, volatility="8")
    mids = []
    for _ in range(120):
        mids.append(venue.prices(symbols=["BTCUSD"])["BTCUSD"].mid)
        clock.advance(1)
    moves = [abs(b - a) / a * 10_000 for a, b in itertools.pairwise(mids)]
    assert len(set(mids)) > 100
    assert max(moves) <= Decimal("8.1")  # one step is at most volatility_bps (plus a tick of rounding)


def test_the_walk_stays_positive_under_extreme_volatility(clock):
    venue = make_venue(clock, volatility="1000")
    for _ in range(60):
        clock.advance(BLOCK_SECONDS / 3)
        for quote in venue.prices(symbols=["DOGEUSD", "XCUUSD"]).values():
            assert quote.bid > 0 and quote.ask >= quote.bid


def test_unknown_symbols_are_left_out(venue):
    assert set(venue.prices(symbols=["BTCUSD", "NOPE", "BTCUSD"])) == {"BTCUSD"}
    assert venue.prices(symbols=["NOPE"]) == {}


def test_setting_a_price_re_anchors_the_walk_for_every_process(clock, venue):
    venue.prices(symbols=["BTCUSD"])
    quote = venue.paper_price_set(symbol="BTCUSD", price=Decimal("70000"))
    assert quote.mid == Decimal("70000")
    other_process = make_venue(clock)
    assert other_process.prices(symbols=["BTCUSD"])["BTCUSD"] == quote
    clock.advance(1)
    moved = other_process.prices(symbols=["BTCUSD"])["BTCUSD"].mid
    assert moved != Decimal("70000")
    assert abs(moved - Decimal("70000")) <= Decimal("70000") * Decimal("0.0008")


def test_a_set_price_is_rounded_to_the_tick(venue):
    assert venue.paper_price_set(symbol="EURUSD", price=Decimal("1.123456")).mid == Decimal("1.12346")


def test_bid_and_ask_sit_spread_bps_apart_on_the_tick(clock):
    venue = make_venue(clock, spread="2")
    pin(venue, EURUSD="1.10000", BTCUSD="64000.0")
    quotes = venue.prices(symbols=["EURUSD", "BTCUSD"])
    assert (quotes["EURUSD"].bid, quotes["EURUSD"].ask) == (Decimal("1.09989"), Decimal("1.10011"))
    assert (quotes["BTCUSD"].bid, quotes["BTCUSD"].ask) == (Decimal("63993.6"), Decimal("64006.4"))
    assert quotes["EURUSD"].mid == Decimal("1.10000")


def test_after_a_long_idle_the_walk_resumes_from_the_last_price_without_catching_up(clock, venue):
    pin(venue, NDX="18000.00")
    clock.advance(24 * 3600)
    started = time.perf_counter()
    quote = make_venue(clock).prices(symbols=["NDX"])["NDX"]
    assert time.perf_counter() - started < 0.5
    assert quote.mid == Decimal("18000.00")  # a day is a whole number of blocks: back at the anchor


def test_options_are_checked_when_the_adapter_is_built(clock):
    with pytest.raises(registry.ProviderNotConfigured):
        make_venue(clock, spread="-1")
    with pytest.raises(registry.ProviderNotConfigured):
        make_venue(clock, volatility="abc")
    with pytest.raises(registry.ProviderNotConfigured):
        make_venue(clock, mirror="paper")


def test_health_check_passes_with_redis(venue):
    venue.health_check()


def test_markets_list_at_least_twenty_pairs_over_the_four_categories(venue):
    markets = venue.markets()
    assert len(markets) >= 20
    assert {m.category.value for m in markets} == {"crypto", "forex", "indices", "commodities"}
    assert len({m.symbol for m in markets}) == len(markets)
    for market in markets:
        for value in (market.tick_size, market.size_step, market.min_collateral, market.max_leverage):
            assert isinstance(value, Decimal) and value > 0
        assert market.max_leverage >= 1
    for pair in PAPER_PAIRS:
        assert pair.seed_price % pair.market.tick_size == 0


# --- Mirroring another venue -----------------------------------------------------------


class MirroredVenue(ListingNothingVenue):
    name = "mirror-test"
    quotes: dict[str, Quote] = {}
    failing = False

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        if MirroredVenue.failing:
            raise ProviderError("mirror-test", "down", retryable=True)
        return {s: q for s, q in MirroredVenue.quotes.items() if s in symbols}


@pytest.fixture
def mirror(clock: Clock) -> Any:
    catalogue = copy.deepcopy(settings.PROVIDERS)
    catalogue["mirror-test"] = {
        "kind": "venue",
        "class": "tests.venues.paper.test_prices.MirroredVenue",
        "options": {},
        "secret_fields": [],
    }
    MirroredVenue.quotes = {
        "BTCUSD": Quote(symbol="BTCUSD", bid=Decimal("80000"), ask=Decimal("80010"), ts=clock()),
        "EURUSD": Quote(
            symbol="EURUSD", bid=Decimal("1.2"), ask=Decimal("1.2"), ts=clock(), market_open=False
        ),
    }
    MirroredVenue.failing = False
    with override_settings(PROVIDERS=catalogue):
        registry.reset_cache()
        breaker_reset("mirror-test")
        yield MirroredVenue
        breaker_reset("mirror-test")
    registry.reset_cache()


@pytest.mark.django_db
def test_a_mirror_venue_s_mids_are_quoted_with_our_spread(clock, mirror):
    venue = make_venue(clock, mirror="mirror-test")
    quotes = venue.prices(symbols=["BTCUSD", "EURUSD", "SPX"])
    assert quotes["BTCUSD"].mid == Decimal("80005.0")
    assert (quotes["BTCUSD"].bid, quotes["BTCUSD"].ask) == (Decimal("79996.9"), Decimal("80013.1"))
    assert quotes["EURUSD"].mid == Decimal("1.20000") and quotes["EURUSD"].market_open is False
    assert quotes["SPX"].mid == Decimal("5200.00")  # the mirror does not quote it: the walk does


@pytest.mark.django_db
def test_when_the_mirror_fails_the_walk_continues_from_its_last_mids(clock, mirror):
    venue = make_venue(clock, mirror="mirror-test")
    venue.prices(symbols=["BTCUSD"])
    mirror.failing = True
    assert venue.prices(symbols=["BTCUSD"])["BTCUSD"].mid == Decimal("80005.0")
    clock.advance(5)
    assert abs(venue.prices(symbols=["BTCUSD"])["BTCUSD"].mid - Decimal("80005")) < Decimal("400")


@pytest.mark.django_db
def test_a_mirror_that_is_not_configured_falls_back_to_the_walk(clock):
    venue = make_venue(clock, mirror="no-such-venue")
    assert venue.prices(symbols=["BTCUSD"])["BTCUSD"].mid == Decimal("64000.0")
