"""Pre-trade limits in effect for a user on a pair: ``RiskLimit`` rows over the app setting defaults."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Q

from accounts.models import User
from marqetfi.core.app_settings.cache import app_setting
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


def _specificity(row: RiskLimit) -> int:
    return (0 if row.user_id else 2) + (0 if row.symbol else 1)


def risk_profile_get(*, user: User, symbol: str, category: str, venue_max_leverage: Decimal) -> RiskProfile:
    """For each limit the most specific row setting it wins (user + pair, user, pair, global);
    leverage is further capped by the category default and by what the venue allows."""
    rows = sorted(
        RiskLimit.objects.filter(Q(user=user) | Q(user__isnull=True), Q(symbol=symbol) | Q(symbol="")),
        key=_specificity,
    )
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
