"""The documented shapes of trading answers (OpenAPI); ``trading.presenters`` writes them."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from marqetfi.core.api import decimal_output


class TrailingSerializer(serializers.Serializer):
    percent = decimal_output(required=False)
    distance = decimal_output(required=False)


class ProtectiveOrderSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=["stop_loss", "take_profit", "trailing_stop"])
    status = serializers.ChoiceField(choices=["armed", "fired", "cancelled"])
    execution_mode = serializers.ChoiceField(choices=["native", "synthetic"])
    trigger_price = decimal_output()
    oco_group = serializers.UUIDField(allow_null=True)
    trailing = TrailingSerializer(required=False)
    best_price = decimal_output(required=False)


class OrderSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    client_order_id = serializers.CharField(allow_null=True)
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=["long", "short"])
    type = serializers.ChoiceField(choices=["market", "limit"])
    purpose = serializers.ChoiceField(choices=["open", "close"])
    status = serializers.ChoiceField(
        choices=[
            "pending",
            "open",
            "partially_filled",
            "filled",
            "cancelled",
            "rejected",
            "expired",
            "unknown",
        ]
    )
    collateral = decimal_output(help_text="USDC")
    leverage = decimal_output()
    price = decimal_output(allow_null=True, help_text="Limit price")
    size = decimal_output(allow_null=True, help_text="Close orders: the size to close")
    stop_loss = decimal_output(allow_null=True)
    take_profit = decimal_output(allow_null=True)
    trailing_stop = TrailingSerializer(allow_null=True)
    provider = serializers.CharField(allow_null=True)
    routing = serializers.DictField(
        help_text="reason, candidates, skipped venues and every attempt with its error"
    )
    execution_mode = serializers.DictField(
        child=serializers.ChoiceField(choices=["native", "synthetic"]),
        help_text="Per protective order asked for: native at the venue or synthetic by our trigger engine",
    )
    filled_size = decimal_output()
    avg_fill_price = decimal_output(allow_null=True)
    fee = decimal_output(help_text="USDC")
    reject_code = serializers.CharField(allow_null=True)
    reject_reason = serializers.CharField(allow_null=True)
    position_id = serializers.UUIDField(allow_null=True)
    closed_by = serializers.CharField(allow_null=True)
    resource_version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PositionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=["long", "short"])
    provider = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["open", "closing", "closed", "liquidated"],
        help_text="closing: a close is pending at the venue; a second close is refused until it is done.",
    )
    size = decimal_output()
    entry_price = decimal_output()
    collateral = decimal_output(help_text="USDC")
    leverage = decimal_output()
    liquidation_price = decimal_output(allow_null=True)
    mark_price = decimal_output(allow_null=True, help_text="The price it would close at now")
    unrealized_pnl = decimal_output(allow_null=True, help_text="USDC")
    realized_pnl = decimal_output(help_text="USDC")
    fees_paid = decimal_output(help_text="USDC")
    stop_loss = decimal_output(allow_null=True)
    take_profit = decimal_output(allow_null=True)
    trailing_stop = ProtectiveOrderSerializer(allow_null=True)
    protective_orders = ProtectiveOrderSerializer(many=True)
    opened_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    resource_version = serializers.IntegerField()


class FillSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    order_id = serializers.UUIDField(allow_null=True)
    position_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=["open", "close", "liquidation"])
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=["long", "short"])
    provider = serializers.CharField()
    size = decimal_output()
    price = decimal_output()
    fee = decimal_output()
    realized_pnl = decimal_output()
    executed_at = serializers.DateTimeField()


class AccountSerializer(serializers.Serializer):
    currency = serializers.CharField()
    available = decimal_output()
    margin_locked = decimal_output()
    equity = decimal_output()
    unrealized_pnl = decimal_output()
    open_positions = serializers.IntegerField()


class OrderPreviewSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    reject_code = serializers.CharField(allow_null=True)
    message = serializers.CharField(required=False)
    details = serializers.DictField(required=False)
    symbol = serializers.CharField(required=False)
    provider = serializers.CharField(required=False)
    routing = serializers.DictField(required=False)
    entry_price = decimal_output(required=False)
    size = decimal_output(required=False)
    notional = decimal_output(required=False)
    margin = decimal_output(required=False)
    fees = decimal_output(required=False)
    liquidation_price = decimal_output(required=False, allow_null=True)
    rounding = serializers.DictField(required=False)


# --- OpenAPI examples ------------------------------------------------------------------------

ORDER_REQUEST_EXAMPLES = [
    OpenApiExample(
        "Market order with stop-loss and take-profit",
        value={
            "symbol": "BTCUSD",
            "side": "long",
            "type": "market",
            "collateral": "100",
            "leverage": "10",
            "stop_loss": "60000",
            "take_profit": "70000",
            "client_order_id": "abc-1",
        },
        request_only=True,
    ),
    OpenApiExample(
        "Limit order with a trailing stop",
        value={
            "symbol": "ETHUSD",
            "side": "short",
            "type": "limit",
            "collateral": "250",
            "leverage": "5",
            "price": "3500",
            "trailing_stop": {"percent": "2"},
            "rounding": "nearest",
            "client_order_id": "abc-2",
        },
        request_only=True,
    ),
]

ORDER_RESPONSE_EXAMPLE = OpenApiExample(
    "Filled market order",
    value={
        "id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
        "client_order_id": "abc-1",
        "symbol": "BTCUSD",
        "side": "long",
        "type": "market",
        "purpose": "open",
        "status": "filled",
        "collateral": "100",
        "leverage": "10",
        "price": None,
        "size": "0.0156",
        "stop_loss": "60000",
        "take_profit": "70000",
        "trailing_stop": None,
        "provider": "lighter",
        "routing": {"reason": "default", "candidates": ["lighter", "ostium"], "attempts": []},
        "execution_mode": {"stop_loss": "native", "take_profit": "native"},
        "filled_size": "0.0156",
        "avg_fill_price": "64123.5",
        "fee": "0.5",
        "reject_code": None,
        "reject_reason": None,
        "position_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "closed_by": None,
        "resource_version": 3,
        "created_at": "2026-01-01T12:00:00.000Z",
        "updated_at": "2026-01-01T12:00:00.420Z",
    },
    response_only=True,
    status_codes=["201"],
)

POSITION_CLOSE_EXAMPLES = [
    OpenApiExample("Close all at market", value={"type": "market"}, request_only=True),
    OpenApiExample(
        "Close part with a limit order",
        value={"type": "limit", "price": "68000", "size": "0.005"},
        request_only=True,
    ),
]

PROTECTION_UPDATE_EXAMPLES = [
    OpenApiExample(
        "Move the stop-loss, set a take-profit",
        value={"stop_loss": "62000", "take_profit": "72000"},
        request_only=True,
    ),
    OpenApiExample(
        "Trailing stop instead of a fixed stop-loss",
        value={"stop_loss": None, "trailing_stop": {"distance": "500"}},
        request_only=True,
    ),
]
