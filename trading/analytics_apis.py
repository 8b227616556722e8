"""``GET /analytics``: a trader's results over a period; and the JSON of the platform's figures
that the admin analytics shows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from marqetfi.core.api import decimal_output
from marqetfi.core.formats import decimal_text, timestamp_text
from trading.analytics import (
    DEFAULT_PERIOD,
    PERIODS,
    PlatformExposure,
    PlatformFigures,
    SymbolFigures,
    TradeOutcome,
    UserAnalytics,
    analytics_for_user,
    period_bounds,
)


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def _window(start: datetime | None, end: datetime) -> dict[str, str | None]:
    return {"from": timestamp_text(start) if start else None, "to": timestamp_text(end)}


def _trade(outcome: TradeOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {
        "position_id": str(outcome.position_id),
        "symbol": outcome.symbol,
        "side": outcome.side,
        "realized_pnl": decimal_text(outcome.realized_pnl),
        "closed_at": timestamp_text(outcome.closed_at) if outcome.closed_at else None,
    }


def _symbol(figures: SymbolFigures) -> dict[str, Any]:
    return {
        "symbol": figures.symbol,
        "realized_pnl": decimal_text(figures.realized_pnl),
        "volume": decimal_text(figures.volume),
        "trades": figures.trades,
        "closed_positions": figures.closed_positions,
        "win_rate": _amount(figures.win_rate),
    }


def user_analytics_data(analytics: UserAnalytics) -> dict[str, Any]:
    return {
        "currency": "USDC",
        "period": _window(analytics.start, analytics.end),
        "realized_pnl": decimal_text(analytics.realized_pnl),
        "unrealized_pnl": decimal_text(analytics.unrealized_pnl),
        "fees": decimal_text(analytics.fees),
        "volume": decimal_text(analytics.volume),
        "trades": analytics.trades,
        "closed_positions": analytics.closed_positions,
        "win_rate": _amount(analytics.win_rate),
        "average_win": _amount(analytics.average_win),
        "average_loss": _amount(analytics.average_loss),
        "best_trade": _trade(analytics.best_trade),
        "worst_trade": _trade(analytics.worst_trade),
        "per_symbol": [_symbol(figures) for figures in analytics.per_symbol],
    }


def platform_figures_data(figures: PlatformFigures) -> dict[str, Any]:
    return {
        "period": _window(figures.start, figures.end),
        "volume": decimal_text(figures.volume),
        "fees": decimal_text(figures.fees),
        "fees_posted": decimal_text(figures.fees_posted),
        "realized_pnl": decimal_text(figures.realized_pnl),
        "trades": figures.trades,
        "orders_by_status": figures.orders_by_status,
        "traders_active": figures.traders_active,
        "liquidations": figures.liquidations,
        "margin_calls": figures.margin_calls,
    }


def platform_exposure_data(exposure: PlatformExposure) -> dict[str, Any]:
    return {
        "open_positions": exposure.open_positions,
        "open_interest": {
            "total": decimal_text(exposure.open_interest),
            "by_category": {k: decimal_text(v) for k, v in exposure.open_interest_by_category.items()},
            "by_venue": {k: decimal_text(v) for k, v in exposure.open_interest_by_venue.items()},
        },
        "fees_account_balance": decimal_text(exposure.fees_account_balance),
    }


class PeriodSerializer(serializers.Serializer):
    from_ = serializers.DateTimeField(allow_null=True, help_text="null: since the beginning")
    to = serializers.DateTimeField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class TradeOutcomeSerializer(serializers.Serializer):
    position_id = serializers.UUIDField()
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=["long", "short"])
    realized_pnl = decimal_output(help_text="USDC, before fees")
    closed_at = serializers.DateTimeField(allow_null=True)


class SymbolFiguresSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    realized_pnl = decimal_output(help_text="USDC")
    volume = decimal_output(help_text="USDC")
    trades = serializers.IntegerField()
    closed_positions = serializers.IntegerField()
    win_rate = decimal_output(allow_null=True)


class AnalyticsSerializer(serializers.Serializer):
    currency = serializers.CharField()
    period = PeriodSerializer(help_text="from (null: since the beginning) and to, half-open")
    realized_pnl = decimal_output(help_text="USDC: the fills' realized P&L in the period, before fees")
    unrealized_pnl = decimal_output(help_text="USDC: open positions now, at the price they would close at")
    fees = decimal_output(help_text="USDC: fees the fills in the period charged")
    volume = decimal_output(help_text="USDC: size x price of the fills in the period")
    trades = serializers.IntegerField(help_text="Fills in the period")
    closed_positions = serializers.IntegerField(help_text="Positions closed or liquidated in the period")
    win_rate = decimal_output(allow_null=True, help_text="Share of those with a profit; null when none")
    average_win = decimal_output(allow_null=True)
    average_loss = decimal_output(allow_null=True)
    best_trade = TradeOutcomeSerializer(allow_null=True)
    worst_trade = TradeOutcomeSerializer(allow_null=True)
    per_symbol = SymbolFiguresSerializer(many=True)


class AnalyticsApi(APIView):
    """The signed-in trader's results: a named ``period`` (default 30d) or ``from`` / ``to``."""

    class FilterSerializer(serializers.Serializer):
        period = serializers.ChoiceField(choices=list(PERIODS), required=False)
        from_ = serializers.DateTimeField(required=False, help_text="ISO 8601; inclusive")
        to = serializers.DateTimeField(required=False, help_text="ISO 8601; exclusive, default now")

        def get_fields(self) -> dict[str, serializers.Field]:
            fields = super().get_fields()
            fields["from"] = fields.pop("from_")
            return fields

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            explicit = "from" in attrs or "to" in attrs
            if explicit and "period" in attrs:
                raise serializers.ValidationError({"period": ["Send either period or from / to, not both."]})
            if "from" in attrs and attrs["from"] >= attrs.get("to", timezone.now()):
                raise serializers.ValidationError({"from": ["Must be earlier than to (default: now)."]})
            return attrs

        def bounds(self, *, now: datetime) -> tuple[datetime | None, datetime]:
            data = self.validated_data
            if "from" in data or "to" in data:
                return data.get("from"), data.get("to", now)
            return period_bounds(data.get("period", DEFAULT_PERIOD), now=now)

    @extend_schema(
        parameters=[FilterSerializer], responses={200: AnalyticsSerializer}, operation_id="analytics_get"
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        start, end = filters.bounds(now=timezone.now())
        return Response(
            user_analytics_data(analytics_for_user(user=cast(User, request.user), start=start, end=end))
        )
