"""The pair catalogue sync: what each venue lists becomes TradingPair and PairListing rows."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from pricing import tasks
from pricing.errors import UnknownSymbol
from pricing.models import PairListing, TradingPair
from pricing.selectors import pair_listing_for_trading, pair_listings_routed
from pricing.services.pairs import pairs_sync, pairs_sync_all, symbol_split
from providers import registry
from providers.base import MarketCategory
from providers.errors import NoVenueAvailable, ProviderError
from providers.models import Provider
from tests.pricing.venues import market

pytestmark = pytest.mark.django_db


def listing(symbol: str, provider: str) -> PairListing:
    return PairListing.objects.select_related("pair").get(pair__symbol=symbol, provider=provider)


def test_first_sync_creates_pairs_and_listings_with_the_venues_limits(venues):
    venues["alpha"].markets = [
        market("BTCUSD", tick_size="0.5", size_step="0.00001", min_collateral="5", max_leverage="50"),
        market("EURUSD", MarketCategory.FOREX, tick_size="0.00001"),
    ]

    result = pairs_sync(provider="alpha")

    assert (result.created, result.updated, result.unchanged, result.deactivated) == (2, 0, 0, 0)
    btc = listing("BTCUSD", "alpha")
    assert btc.venue_symbol == "BTCUSD-PERP"
    assert (btc.tick_size, btc.size_step, btc.min_collateral, btc.max_leverage) == (
        Decimal("0.5"),
        Decimal("0.00001"),
        Decimal("5"),
        Decimal("50"),
    )
    assert (
        btc.pair.category,
        btc.pair.base,
        btc.pair.quote,
        btc.pair.display_name,
        btc.pair.trading_hours,
    ) == (
        "crypto",
        "BTC",
        "USD",
        "BTC/USD",
        "24/7",
    )
    assert TradingPair.objects.get(symbol="EURUSD").trading_hours == "weekdays"


def test_sync_again_changes_only_what_the_venue_changed(venues):
    venues["alpha"].markets = [market("BTCUSD"), market("ETHUSD")]
    pairs_sync(provider="alpha")
    untouched = listing("ETHUSD", "alpha").updated_at

    venues["alpha"].markets = [market("BTCUSD", max_leverage="25"), market("ETHUSD")]
    result = pairs_sync(provider="alpha")

    assert (result.created, result.updated, result.unchanged, result.deactivated) == (0, 1, 1, 0)
    assert listing("BTCUSD", "alpha").max_leverage == Decimal("25")
    assert listing("ETHUSD", "alpha").updated_at == untouched


def test_a_market_the_venue_dropped_is_deactivated_and_comes_back_when_listed_again(venues):
    venues["alpha"].markets = [market("BTCUSD"), market("ETHUSD")]
    pairs_sync(provider="alpha")

    venues["alpha"].markets = [market("BTCUSD")]
    assert pairs_sync(provider="alpha").deactivated == 1
    assert listing("ETHUSD", "alpha").active is False

    venues["alpha"].markets = [market("BTCUSD"), market("ETHUSD")]
    assert pairs_sync(provider="alpha").updated == 1
    assert listing("ETHUSD", "alpha").active is True


def test_each_venue_has_its_own_listing_of_a_shared_pair(venues):
    venues["alpha"].markets = [market("BTCUSD", venue_symbol="1")]
    venues["beta"].markets = [market("BTCUSD", venue_symbol="BTC-USD", max_leverage="10")]
    pairs_sync(provider="alpha")
    pairs_sync(provider="beta")

    assert TradingPair.objects.count() == 1
    assert listing("BTCUSD", "alpha").venue_symbol == "1"
    assert listing("BTCUSD", "beta").max_leverage == Decimal("10")


def test_the_sync_leaves_what_operators_set_on_a_pair(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    pairs_sync(provider="alpha")
    TradingPair.objects.filter(symbol="BTCUSD").update(display_name="Bitcoin", active=False)

    pairs_sync(provider="alpha")

    pair = TradingPair.objects.get(symbol="BTCUSD")
    assert (pair.display_name, pair.active) == ("Bitcoin", False)


def test_invalid_and_duplicate_markets_are_refused_and_the_rest_synced(venues):
    venues["alpha"].markets = [
        market("BTCUSD"),
        market("BTCUSD", max_leverage="99"),
        market("ETHUSD", tick_size="0"),
        market("SOLUSD", max_leverage="0.5"),
        market("btc-usd"),
        market("DOGEUSD", size_step="0.0000000000000000001"),
    ]

    result = pairs_sync(provider="alpha")

    assert result.created == 1
    assert set(result.rejected) == {"BTCUSD", "ETHUSD", "SOLUSD", "btc-usd", "DOGEUSD"}
    assert listing("BTCUSD", "alpha").max_leverage == Decimal("20")


def test_an_empty_catalogue_deactivates_nothing(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    pairs_sync(provider="alpha")
    venues["alpha"].markets = []

    with pytest.raises(ProviderError, match="no usable market"):
        pairs_sync(provider="alpha")

    assert listing("BTCUSD", "alpha").active is True


def test_a_failing_venue_changes_nothing(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    pairs_sync(provider="alpha")
    venues["alpha"].failure = ProviderError("alpha", "down", status_code=503, retryable=True)

    with pytest.raises(ProviderError):
        pairs_sync(provider="alpha")

    assert listing("BTCUSD", "alpha").active is True


def test_sync_all_reports_a_failing_venue_and_syncs_the_others(venues):
    venues["alpha"].failure = ProviderError("alpha", "down", status_code=503, retryable=True)
    venues["beta"].markets = [market("EURUSD", MarketCategory.FOREX)]

    results = {result.provider: result for result in pairs_sync_all()}

    assert set(results) == {"alpha", "beta"}
    assert results["alpha"].error == "down"
    assert results["beta"].created == 1


def test_sync_all_skips_a_switched_off_venue_without_asking_it(venues):
    Provider.objects.create(name="alpha", kind="venue", enabled=False)
    registry.reset_cache()
    venues["beta"].markets = [market("EURUSD", MarketCategory.FOREX)]

    results = {result.provider: result for result in pairs_sync_all()}

    assert results["alpha"].error == "switched off"
    assert venues["alpha"].market_calls == 0
    assert results["beta"].created == 1


def test_the_beat_task_syncs_every_venue(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    venues["beta"].markets = [market("EURUSD", MarketCategory.FOREX)]

    summaries = tasks.pairs_sync_all()

    assert summaries == [
        "alpha: 1 new, 0 updated, 0 unchanged, 0 deactivated",
        "beta: 1 new, 0 updated, 0 unchanged, 0 deactivated",
    ]
    assert PairListing.objects.filter(active=True).count() == 2


def test_the_command_syncs_one_provider_or_all(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    venues["beta"].markets = [market("EURUSD", MarketCategory.FOREX)]
    out = StringIO()

    call_command("sync_pairs", "--provider", "alpha", stdout=out)
    assert "alpha: 1 new" in out.getvalue()
    assert not PairListing.objects.filter(provider="beta").exists()

    call_command("sync_pairs", stdout=out)
    assert "beta: 1 new" in out.getvalue()


def test_the_command_fails_loudly_for_a_venue_it_cannot_ask(venues):
    with pytest.raises(CommandError, match="nowhere"):
        call_command("sync_pairs", "--provider", "nowhere", stdout=StringIO())


@pytest.mark.parametrize(
    ("symbol", "split"),
    [
        ("BTCUSD", ("BTC", "USD")),
        ("ETHUSDT", ("ETH", "USDT")),
        ("USDJPY", ("USD", "JPY")),
        ("XYZ", ("XYZ", "")),
    ],
)
def test_symbols_split_into_base_and_quote(symbol, split):
    assert symbol_split(symbol) == split


# --- Which listing a trader's order goes to ----------------------------------------------


def test_an_order_goes_to_the_first_routed_venue_that_lists_the_pair(venues):
    venues["beta"].markets = [market("BTCUSD", venue_symbol="BTC-USD")]
    pairs_sync(provider="beta")  # alpha, the primary for crypto, does not list BTCUSD

    chosen = pair_listing_for_trading(symbol="btcusd")

    assert (chosen.provider, chosen.venue_symbol) == ("beta", "BTC-USD")


def test_the_primary_venue_wins_when_it_lists_the_pair(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    venues["beta"].markets = [market("BTCUSD")]
    pairs_sync(provider="alpha")
    pairs_sync(provider="beta")

    listings, decision = pair_listings_routed(symbol="BTCUSD")

    assert [item.provider for item in listings] == ["alpha", "beta"]
    assert decision.rule == "default:crypto"


def test_no_listing_on_any_routed_venue_is_no_venue_available(venues):
    venues["alpha"].markets = [market("BTCUSD")]
    pairs_sync(provider="alpha")
    PairListing.objects.update(active=False)

    with pytest.raises(NoVenueAvailable):
        pair_listing_for_trading(symbol="BTCUSD")
    with pytest.raises(UnknownSymbol):
        pair_listing_for_trading(symbol="NOPEUSD")
