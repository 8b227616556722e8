"""Reads of the pair catalogue that the API, the price service and trading share."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F, QuerySet

from marqetfi.core.runtime import GenerationCache
from pricing.errors import UnknownSymbol
from pricing.models import PairListing, TradingPair
from providers.services.routing import RouteDecision, route, routing_generation

# The active pair of a symbol with its active listings by venue, read once per process and
# kept until the catalogue changes (``pairs_changed``): routing reads them on every order.
_listings_cache: GenerationCache[str, tuple[TradingPair, dict[str, PairListing]]] = GenerationCache(
    routing_generation
)


def symbol_normalize(symbol: str) -> str:
    return symbol.strip().upper()


def pairs_by_symbol(symbols: Iterable[str]) -> dict[str, TradingPair]:
    """The active pairs among ``symbols`` (already normalised), in one query."""
    return {pair.symbol: pair for pair in TradingPair.objects.filter(symbol__in=list(symbols), active=True)}


def pair_get(*, symbol: str) -> TradingPair:
    """The active pair with this symbol, or ``UnknownSymbol`` (404)."""
    normalized = symbol_normalize(symbol)
    pair = pairs_by_symbol([normalized]).get(normalized)
    if pair is None:
        raise UnknownSymbol(details={"symbol": normalized})
    return pair


def pair_listings_list(*, category: str | None = None, provider: str | None = None) -> QuerySet[PairListing]:
    """Active listings of active pairs, each annotated with its pair's ``symbol``."""
    listings = (
        PairListing.objects.filter(active=True, pair__active=True)
        .select_related("pair")
        .annotate(symbol=F("pair__symbol"))
    )
    if category:
        listings = listings.filter(pair__category=category)
    if provider:
        listings = listings.filter(provider=provider)
    return listings


def pair_listings_routed(*, symbol: str) -> tuple[list[PairListing], RouteDecision]:
    """The listings an order on ``symbol`` may go to, best first, with the routing decision.

    Routing for orders skips venues that do not list the pair (as well as those switched
    off, not configured or with an open circuit); the first listing is the primary, the
    others the fallbacks. Raises ``UnknownSymbol`` or ``NoVenueAvailable`` (503).
    """
    pair, listings = _listings_cache.get(symbol_normalize(symbol), lambda: _pair_listings_load(symbol))
    decision = route(
        symbol=pair.symbol, category=pair.category, purpose="order", listed_on=lambda venue: venue in listings
    )
    return [listings[venue] for venue in decision.venues], decision


def pair_get_cached(*, symbol: str) -> TradingPair:
    """``pair_get`` from this process's copy of the catalogue (see ``_listings_cache``)."""
    pair, _ = _listings_cache.get(symbol_normalize(symbol), lambda: _pair_listings_load(symbol))
    return pair


def _pair_listings_load(symbol: str) -> tuple[TradingPair, dict[str, PairListing]]:
    pair = pair_get(symbol=symbol)
    return pair, {listing.provider: listing for listing in pair.listings.filter(active=True)}


def pair_listings_cache_clear() -> None:
    """Forget the catalogue this process read (tests: rows that rolled back move no generation)."""
    _listings_cache.clear()


def pair_listing_for_trading(*, symbol: str) -> PairListing:
    """The listing a trader's order on ``symbol`` would go to now (the first routed venue listing it)."""
    listings, _ = pair_listings_routed(symbol=symbol)
    return listings[0]
