"""The running paper venue, and the tick hook that fills its resting orders.

Driving its prices by hand is pricing's (``pricing.services.paper``): a set price flows
through the price service like any tick, and providers import nothing above them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from providers import registry
from providers.venues.paper.adapter import PaperVenue
from providers.venues.paper.book import paper_match_resting_orders
from providers.venues.paper.errors import PaperVenueDisabled


def paper_venue() -> PaperVenue:
    """The running paper venue; PaperVenueDisabled when operators switched it off."""
    if not registry.provider_enabled(PaperVenue.name):
        raise PaperVenueDisabled()
    venue = registry.adapter(PaperVenue.name)
    if not isinstance(venue, PaperVenue):
        raise PaperVenueDisabled("The paper provider is not the simulated venue in this deployment.")
    return venue


class _Tick(Protocol):
    symbol: str
    bid: Decimal
    ask: Decimal
    provider: str


def paper_tick_hook(tick: _Tick) -> None:
    """A ``PRICE_TICK_HOOKS`` entry: every paper tick the feed ingests fills the resting paper
    orders it crosses. Ticks of other venues never touch paper orders."""
    if tick.provider == PaperVenue.name:
        paper_match_resting_orders(symbol=tick.symbol, bid=tick.bid, ask=tick.ask)
