"""Driving the paper venue's prices by hand (demos, drills, black-box tests)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from pricing.services.prices import price_tick_ingest
from providers.base import Quote
from providers.venues.paper.adapter import PaperVenue
from providers.venues.paper.book import paper_match_resting_orders
from providers.venues.paper.errors import InvalidPaperPrice, UnknownPaperSymbol
from providers.venues.paper.markets import paper_pair
from providers.venues.paper.services import paper_venue
from providers.venues.paper.walk import round_to_step


def paper_price_drive(*, symbol: str, price: Decimal) -> Quote:
    """Set ``symbol``'s paper price now and let it flow like a real tick.

    Re-anchors the walk (every process sees the new price at once), hands the quote to the
    price service (cache, fan-out, triggers) and fills the resting paper orders it crosses.
    """
    venue = paper_venue()
    pair = paper_pair(symbol)
    if pair is None:
        raise UnknownPaperSymbol(details={"symbol": symbol})
    if not price.is_finite() or round_to_step(price, pair.market.tick_size, ROUND_HALF_EVEN) <= 0:
        raise InvalidPaperPrice(details={"price": str(price), "tick_size": str(pair.market.tick_size)})
    quote = venue.paper_price_set(symbol=symbol, price=price)
    price_tick_ingest(
        symbol=quote.symbol,
        bid=quote.bid,
        ask=quote.ask,
        provider=PaperVenue.name,
        ts=quote.ts,
        market_open=quote.market_open,
    )
    paper_match_resting_orders(symbol=symbol, bid=quote.bid, ask=quote.ask)
    return quote
