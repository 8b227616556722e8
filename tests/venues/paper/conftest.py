from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django_redis import get_redis_connection

from providers import registry
from providers.venues.paper.adapter import PaperVenue
from providers.venues.paper.walk import ANCHORS_KEY


class Clock:
    """A clock the test moves by hand; the adapter reads it through its ``now`` callable."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _fresh_paper_state() -> Iterator[None]:
    """Paper prices live in Redis, which outlives a test's database transaction."""
    get_redis_connection("default").delete(ANCHORS_KEY)
    registry.reset_cache()
    yield
    get_redis_connection("default").delete(ANCHORS_KEY)
    registry.reset_cache()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC))


def make_venue(
    clock: Clock, *, spread: str = "2", slippage: str = "1", volatility: str = "8", mirror: str = ""
) -> PaperVenue:
    return PaperVenue(
        spread_bps=spread, slippage_bps=slippage, volatility_bps=volatility, mirror_venue=mirror, now=clock
    )


@pytest.fixture
def venue(clock: Clock) -> PaperVenue:
    return make_venue(clock)


def pin(venue: PaperVenue, **prices: str) -> None:
    """Set each pair's paper price now (the clock does not move, so neither does the walk)."""
    for symbol, price in prices.items():
        venue.paper_price_set(symbol=symbol, price=Decimal(price))
