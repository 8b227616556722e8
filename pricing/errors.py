"""Errors of the pair catalogue and the price service, each with a stable code."""

from __future__ import annotations

from marqetfi.core.errors import ApplicationError, ConflictError, NotFoundError
from providers.errors import NoVenueAvailable

__all__ = [
    "InvalidPrice",
    "MarketClosed",
    "NoVenueAvailable",
    "PriceUnavailable",
    "StalePrice",
    "UnknownSymbol",
]


class UnknownSymbol(NotFoundError):
    code = "unknown_symbol"
    default_message = "No tradable pair has this symbol."


class PriceUnavailable(ApplicationError):
    code = "price_unavailable"
    status_code = 503
    default_message = "No venue returned a price for this pair just now. Try again shortly."


class StalePrice(ApplicationError):
    """The freshest price we could get is older than the staleness limit of its category."""

    code = "stale_price"
    status_code = 503
    default_message = "The latest price of this pair is too old to trade on. Try again shortly."


class MarketClosed(ConflictError):
    code = "market_closed"
    default_message = "The market of this pair is closed now."


class InvalidPrice(ApplicationError):
    code = "invalid_price"
    status_code = 400
    default_message = "Bid and ask must be positive, with the bid not above the ask."
