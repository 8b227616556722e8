"""Pre-trade limits in effect for a user on a pair: ``RiskLimit`` rows over the app setting defaults.

Every order reads them, so each process keeps the rows that apply to everyone (by symbol) and
the set of users with rows of their own, until ``risk_limits_generation`` moves (every write
through ``trading.services.risk_limits`` bumps it): a trader without limits of their own costs
no query; one with them, one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Q

from accounts.models import User
from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.runtime import Generation, GenerationCache
from trading.app_settings import RISK_DEFAULTS
from trading.models import RiskLimit

_LIMIT_FIELDS = (
    "max_leverage",
    "max_position_notional",
    "max_total_notional",
    "max_open_positions",
    "liquidation_level",
)


@dataclass(frozen=True)
class RiskProfile:
    """The limits for one user on one pair. ``None``: no such limit."""

    max_leverage: Decimal
    max_position_notional: Decimal | None
    max_total_notional: Decimal | None
    max_open_positions: int | None
    max_position_collateral: Decimal
    liquidation_level: Decimal
    margin_call_level: Decimal


risk_limits_generation = Generation("risk_limits")


@dataclass(frozen=True)
class _SharedLimits:
    by_symbol: dict[str, list[RiskLimit]]  # rows without a user; "" is every pair
    users_with_own: frozenset[Any]  # ids of users with rows of their own


_shared_limits: GenerationCache[str, _SharedLimits] = GenerationCache(risk_limits_generation)


def _shared_limits_load() -> _SharedLimits:
    by_symbol: dict[str, list[RiskLimit]] = defaultdict(list)
    for row in RiskLimit.objects.filter(user__isnull=True):
        by_symbol[row.symbol].append(row)
    users = RiskLimit.objects.filter(user__isnull=False).values_list("user_id", flat=True).distinct()
    return _SharedLimits(by_symbol=dict(by_symbol), users_with_own=frozenset(users))


def risk_limits_cache_clear() -> None:
    """Drop this process's copy (tests whose rows roll back without moving the generation)."""
    _shared_limits.clear()


def _specificity(row: RiskLimit) -> int:
    return (0 if row.user_id else 2) + (0 if row.symbol else 1)


def risk_profile_get(*, user: User, symbol: str, category: str, venue_max_leverage: Decimal) -> RiskProfile:
    """For each limit the most specific row setting it wins (user + pair, user, pair, global);
    leverage is further capped by the category default and by what the venue allows."""
    shared = _shared_limits.get("shared", _shared_limits_load)
    candidates = [*shared.by_symbol.get(symbol, ()), *shared.by_symbol.get("", ())]
    if user.pk in shared.users_with_own:
        candidates += RiskLimit.objects.filter(Q(symbol=symbol) | Q(symbol=""), user=user)
    rows = sorted(candidates, key=_specificity)
    chosen: dict[str, Any] = {}
    for field in _LIMIT_FIELDS:
        chosen[field] = next((getattr(row, field) for row in rows if getattr(row, field) is not None), None)
    defaults = app_setting(RISK_DEFAULTS)
    category_leverage = defaults.max_leverage.get(category, Decimal(1))
    max_leverage = chosen["max_leverage"] if chosen["max_leverage"] is not None else category_leverage
    liquidation_level = chosen["liquidation_level"] or defaults.liquidation_level
    return RiskProfile(
        max_leverage=min(max_leverage, venue_max_leverage),
        max_position_notional=chosen["max_position_notional"],
        max_total_notional=chosen["max_total_notional"],
        max_open_positions=chosen["max_open_positions"],
        max_position_collateral=defaults.max_position_collateral,
        liquidation_level=liquidation_level,
        margin_call_level=max(defaults.margin_call_level, liquidation_level),
    )
