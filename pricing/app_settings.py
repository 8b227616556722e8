"""Pricing's runtime settings: how long a price is cached and how old it may be to trade on."""

from __future__ import annotations

from marqetfi.core.app_settings.definitions import AppSettingDefinition, Validator, int_between, record
from pricing.models import TradingPair

CATEGORIES: tuple[str, ...] = tuple(TradingPair.Category.values)


def per_category(item: Validator) -> Validator:
    """An object with one entry per pair category, each checked by ``item``."""
    return record(dict.fromkeys(CATEGORIES, item))


PRICE_CACHE_TTL_SECONDS: AppSettingDefinition[int] = AppSettingDefinition(
    key="price_cache_ttl_seconds",
    description="How long a fetched price stays in the cache, in seconds (1 to 3600).",
    default=lambda: 30,
    validate=int_between(1, 3600),
    build=int,
)

PRICE_STALENESS_LIMIT_MS: AppSettingDefinition[dict[str, int]] = AppSettingDefinition(
    key="price_staleness_limit_ms",
    description="Age in milliseconds past which a price of the category is too old to trade on.",
    default=lambda: {"crypto": 5000, "forex": 15000, "indices": 15000, "commodities": 15000},
    validate=per_category(int_between(100, 600_000)),
    build=dict,
    merge=True,
)

APP_SETTINGS = (PRICE_CACHE_TTL_SECONDS, PRICE_STALENESS_LIMIT_MS)
