"""Trading's runtime settings: platform risk defaults and the trading fee."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marqetfi.core.app_settings.definitions import AppSettingDefinition, decimal_between, record
from pricing.app_settings import per_category


@dataclass(frozen=True)
class RiskDefaults:
    """Platform-wide risk limits, before any per-pair or per-user override.

    ``margin_call_level`` and ``liquidation_level`` are the share of a position's initial
    collateral left after its unrealised loss: at 0.5 the user is warned, at 0.1 (a 90 %
    loss) the position is closed, leaving room for slippage before the collateral is gone.
    """

    max_leverage: Mapping[str, Decimal]
    max_position_collateral: Decimal
    margin_call_level: Decimal
    liquidation_level: Decimal


def _risk_levels_ordered(value: dict[str, Any]) -> dict[str, list[str]]:
    if Decimal(value["liquidation_level"]) >= Decimal(value["margin_call_level"]):
        return {"liquidation_level": ["Must be below margin_call_level."]}
    return {}


RISK_DEFAULTS: AppSettingDefinition[RiskDefaults] = AppSettingDefinition(
    key="risk_defaults",
    description=(
        "Maximum leverage per category, maximum collateral of one position (USDC), and the "
        "margin-call and liquidation levels as the share of a position's collateral left."
    ),
    default=lambda: {
        "max_leverage": {"crypto": "20", "forex": "50", "indices": "25", "commodities": "25"},
        "max_position_collateral": "100000",
        "margin_call_level": "0.5",
        "liquidation_level": "0.1",
    },
    validate=record(
        {
            "max_leverage": per_category(decimal_between(Decimal(1), Decimal(1000), places=2)),
            "max_position_collateral": decimal_between(Decimal(1), Decimal(10) ** 12, places=6),
            "margin_call_level": decimal_between(Decimal(0), Decimal(1), places=4, exclusive=True),
            "liquidation_level": decimal_between(Decimal(0), Decimal(1), places=4, exclusive=True),
        },
        check=_risk_levels_ordered,
    ),
    build=lambda value: RiskDefaults(
        max_leverage={category: Decimal(limit) for category, limit in value["max_leverage"].items()},
        max_position_collateral=Decimal(value["max_position_collateral"]),
        margin_call_level=Decimal(value["margin_call_level"]),
        liquidation_level=Decimal(value["liquidation_level"]),
    ),
    merge=True,
)

TRADING_FEE_RATE: AppSettingDefinition[Decimal] = AppSettingDefinition(
    key="trading_fee_rate",
    description=(
        "The platform's trading fee as a share of each fill's notional (size x price), charged "
        'on opening and on closing, e.g. "0.0005" for 5 basis points.'
    ),
    default=lambda: "0.0005",
    validate=decimal_between(Decimal(0), Decimal("0.05"), places=6),
    build=Decimal,
)
APP_SETTINGS = (RISK_DEFAULTS, TRADING_FEE_RATE)
