from __future__ import annotations

from decimal import Decimal

import factory

from pricing.models import PairListing, TradingPair


class TradingPairFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TradingPair
        django_get_or_create = ("symbol",)

    symbol = "BTCUSD"
    category = "crypto"
    base = factory.LazyAttribute(lambda pair: pair.symbol[:-3])
    quote = "USD"
    display_name = factory.LazyAttribute(lambda pair: f"{pair.base}/{pair.quote}")
    trading_hours = factory.LazyAttribute(lambda pair: "24/7" if pair.category == "crypto" else "weekdays")


class PairListingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PairListing

    pair = factory.SubFactory(TradingPairFactory)
    provider = "alpha"
    venue_symbol = factory.LazyAttribute(lambda listing: f"{listing.pair.symbol}-PERP")
    tick_size = Decimal("0.1")
    size_step = Decimal("0.0001")
    min_collateral = Decimal("10")
    max_leverage = Decimal("20")
