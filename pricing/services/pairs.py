"""The pair catalogue: what each venue lists, synced into ``TradingPair`` and ``PairListing``.

A venue's ``markets()`` is the truth about its own listings (market id, tick size, size
step, minimum collateral, maximum leverage): the sync copies it, reactivates what came
back and deactivates what the venue dropped. A pair is created the first time any venue
lists its symbol; from then on its descriptive fields and ``active`` switch are the
operators' (the sync never overwrites them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from django.db import transaction
from django.utils import timezone

from pricing.market_hours import schedule_for
from pricing.models import PairListing, TradingPair
from providers import registry
from providers.base import Market
from providers.breaker import call_provider
from providers.errors import ProviderError
from providers.services.routing import routing_generation

logger = logging.getLogger("pricing.pairs")

SYMBOL_PATTERN: Final = re.compile(r"^[A-Z0-9]{2,32}$")
# Longest first, so that BTCUSDT splits as BTC / USDT and not BTCUSD / T.
QUOTE_CURRENCIES: Final = ("USDC", "USDT", "USD", "EUR", "JPY", "GBP", "CHF", "CAD", "AUD", "NZD")
LISTING_FIELDS: Final = ("venue_symbol", "tick_size", "size_step", "min_collateral", "max_leverage", "active")


@dataclass(frozen=True)
class PairsSyncResult:
    """What one venue's sync changed; ``error`` says why it did not run (nothing changed then)."""

    provider: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    rejected: tuple[str, ...] = ()
    error: str = ""

    def __str__(self) -> str:
        if self.error:
            return f"{self.provider}: not synced ({self.error})"
        summary = (
            f"{self.provider}: {self.created} new, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deactivated} deactivated"
        )
        return summary + (f", rejected {', '.join(self.rejected)}" if self.rejected else "")


def symbol_split(symbol: str) -> tuple[str, str]:
    """Base and quote of one of our symbols (``EURUSD`` -> ``EUR``, ``USD``); quote "" if unknown."""
    for quote in QUOTE_CURRENCIES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, ""


def _fits(value: Decimal, *, max_digits: int, decimal_places: int) -> bool:
    """Whether ``value`` is stored by a DecimalField of that size without rounding."""
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return -exponent <= decimal_places and value.adjusted() < max_digits - decimal_places


def _market_problem(market: Market) -> str | None:
    if not SYMBOL_PATTERN.match(market.symbol):
        return "symbol"
    if not market.venue_symbol or len(market.venue_symbol) > 64:
        return "venue_symbol"
    for name, minimum, digits, places in (
        ("tick_size", None, 32, 18),
        ("size_step", None, 32, 18),
        ("min_collateral", Decimal(0), 32, 6),
        ("max_leverage", Decimal(1), 12, 2),
    ):
        value = getattr(market, name)
        if not isinstance(value, Decimal) or not _fits(value, max_digits=digits, decimal_places=places):
            return name
        if (value <= 0) if minimum is None else (value < minimum):
            return name
    return None


def _valid_markets(provider: str, markets: Iterable[Market]) -> tuple[dict[str, Market], list[str]]:
    """Markets by symbol, first one wins; the others (invalid, duplicate) named in the second item."""
    valid: dict[str, Market] = {}
    rejected: list[str] = []
    for market in markets:
        problem = _market_problem(market)
        if problem is None and market.symbol in valid:
            problem = "duplicate"
        if problem is not None:
            logger.warning(
                "pairs sync of %s: market %r refused (%s)",
                provider,
                market.symbol,
                problem,
                extra={"provider": provider},
            )
            rejected.append(market.symbol)
            continue
        valid[market.symbol] = market
    return valid, rejected


def _pairs_ensure(markets: dict[str, Market]) -> dict[str, TradingPair]:
    existing = set(TradingPair.objects.filter(symbol__in=markets).values_list("symbol", flat=True))
    new = []
    for symbol, market in markets.items():
        if symbol in existing:
            continue
        base, quote = symbol_split(symbol)
        new.append(
            TradingPair(
                symbol=symbol,
                category=market.category.value,
                base=base,
                quote=quote,
                display_name=f"{base}/{quote}" if quote else symbol,
                trading_hours=schedule_for(market.category.value),
            )
        )
    # A concurrent sync of another venue may create the same pair: keep whichever came first.
    TradingPair.objects.bulk_create(new, ignore_conflicts=True)
    pairs = {pair.symbol: pair for pair in TradingPair.objects.filter(symbol__in=markets)}
    for symbol, pair in pairs.items():
        if pair.category != markets[symbol].category.value:
            logger.warning(
                "pair %s is %s here but %s on a venue; keeping %s",
                symbol,
                pair.category,
                markets[symbol].category.value,
                pair.category,
            )
    return pairs


@transaction.atomic
def _listings_upsert(*, provider: str, markets: dict[str, Market], rejected: list[str]) -> PairsSyncResult:
    pairs = _pairs_ensure(markets)
    listings = {
        listing.pair.symbol: listing
        for listing in PairListing.objects.select_related("pair").filter(provider=provider)
    }
    now = timezone.now()
    to_create: list[PairListing] = []
    to_update: list[PairListing] = []
    unchanged = 0
    for symbol, market in markets.items():
        values = {
            "venue_symbol": market.venue_symbol,
            "tick_size": market.tick_size,
            "size_step": market.size_step,
            "min_collateral": market.min_collateral,
            "max_leverage": market.max_leverage,
            "active": True,
        }
        listing = listings.get(symbol)
        if listing is None:
            to_create.append(PairListing(pair=pairs[symbol], provider=provider, **values))
        elif any(getattr(listing, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(listing, name, value)
            listing.updated_at = now
            to_update.append(listing)
        else:
            unchanged += 1
    PairListing.objects.bulk_create(
        to_create,
        update_conflicts=True,
        unique_fields=["pair", "provider"],
        update_fields=[*LISTING_FIELDS, "updated_at"],
    )
    PairListing.objects.bulk_update(to_update, fields=[*LISTING_FIELDS, "updated_at"])
    deactivated = (
        PairListing.objects.filter(provider=provider, active=True)
        .exclude(pair__symbol__in=markets)
        .update(active=False, updated_at=now)
    )
    if to_create or to_update or deactivated:
        routing_generation.bump()  # the processes' cached listings (pricing.selectors) are stale
    return PairsSyncResult(
        provider=provider,
        created=len(to_create),
        updated=len(to_update),
        unchanged=unchanged,
        deactivated=deactivated,
        rejected=tuple(rejected),
    )


def pairs_sync(*, provider: str) -> PairsSyncResult:
    """Copy the venue's current listings into the catalogue; safe to run at any time, and again.

    The venue is asked outside any transaction (through its circuit breaker); the writes
    then happen in one. A venue that answers with no market at all is taken as not having
    answered: nothing is deactivated on the strength of an empty (or wholly invalid) list. Raises
    ``ProviderError`` (including ``ProviderNotConfigured``) when the venue cannot be asked.
    """
    venue = registry.venue(provider)
    markets, rejected = _valid_markets(provider, call_provider(provider, venue.markets))
    if not markets:
        refused = f" ({len(rejected)} refused)" if rejected else ""
        raise ProviderError(provider, f"the venue listed no usable market{refused}; catalogue left as it was")
    result = _listings_upsert(provider=provider, markets=markets, rejected=rejected)
    logger.info("pairs sync: %s", result, extra={"provider": provider})
    return result


def pairs_sync_all() -> list[PairsSyncResult]:
    """Sync every venue that is switched on and configured; one failing venue stops no other."""
    results = []
    for name in registry.provider_names("venue"):
        if not registry.provider_enabled(name):
            results.append(PairsSyncResult(provider=name, error="switched off"))
            continue
        if missing := registry.missing_options(name):
            results.append(PairsSyncResult(provider=name, error=f"not configured ({', '.join(missing)})"))
            continue
        try:
            results.append(pairs_sync(provider=name))
        except ProviderError as exc:
            logger.warning("pairs sync of %s failed: %s", name, exc, extra={"provider": name})
            results.append(PairsSyncResult(provider=name, error=exc.message))
        except Exception as exc:  # a broken adapter must not stop the other venues' sync
            logger.exception("pairs sync of %s failed unexpectedly", name, extra={"provider": name})
            results.append(PairsSyncResult(provider=name, error=f"unexpected error: {type(exc).__name__}"))
    return results
