"""Trading endpoints (API.md): account, orders (preview, place, list, cancel), positions, trades."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from marqetfi.core.api import CursorPagination, DecimalStringField
from marqetfi.core.errors import ApplicationError
from marqetfi.core.formats import decimal_text
from marqetfi.core.schema import ERROR_EXAMPLES, ErrorSerializer
from trading.errors import OrderNotFound, PositionNotFound
from trading.idempotency import REPLAYED_HEADER, idempotent
from trading.models import Fill, Order, Position
from trading.presenters import fill_data, order_data, position_data
from trading.schemas import (
    ORDER_REQUEST_EXAMPLES,
    ORDER_RESPONSE_EXAMPLE,
    POSITION_CLOSE_EXAMPLES,
    PROTECTION_UPDATE_EXAMPLES,
    AccountSerializer,
    FillSerializer,
    OrderPreviewSerializer,
    OrderSerializer,
    PositionSerializer,
)
from trading.selectors import account_summary, orders_for_user, positions_for_user, positions_marked
from trading.services.orders import (
    OrderPlan,
    OrderTerms,
    order_cancel,
    order_place,
    order_preview,
    position_close_limit,
)
from trading.services.positions import position_close, position_protection_update
from trading.services.protection import Protection

# The accepted ranges of trading inputs (README, "Field ranges"); the pair's own limits
# (minimum collateral, maximum leverage, tick and step) are checked by the services after.
MAX_COLLATERAL = Decimal(10) ** 12  # USDC, as the max_position_collateral setting allows
MAX_LEVERAGE = Decimal(1000)  # as the max_leverage setting allows
MAX_PRICE = Decimal(10) ** 12
MAX_SIZE = Decimal(10) ** 15
PRICE_PLACES = 18
USDC_PLACES = 6


def _user(request: Request) -> User:
    return cast(User, request.user)


def collateral_field(**kwargs: Any) -> DecimalStringField:
    return DecimalStringField(
        min_value=0, min_exclusive=True, max_value=MAX_COLLATERAL, max_decimal_places=USDC_PLACES, **kwargs
    )


def leverage_field(**kwargs: Any) -> DecimalStringField:
    return DecimalStringField(
        min_value=0, min_exclusive=True, max_value=MAX_LEVERAGE, max_decimal_places=2, **kwargs
    )


def price_field(**kwargs: Any) -> DecimalStringField:
    return DecimalStringField(
        min_value=0, min_exclusive=True, max_value=MAX_PRICE, max_decimal_places=PRICE_PLACES, **kwargs
    )


def size_field(**kwargs: Any) -> DecimalStringField:
    return DecimalStringField(
        min_value=0, min_exclusive=True, max_value=MAX_SIZE, max_decimal_places=PRICE_PLACES, **kwargs
    )


class TrailingStopSerializer(serializers.Serializer):
    percent = DecimalStringField(
        min_value=0,
        min_exclusive=True,
        max_value=100,
        max_decimal_places=4,
        required=False,
        help_text="Distance from the best price, in percent of it.",
    )
    distance = price_field(required=False, help_text="Distance from the best price, in price units.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if len(attrs) != 1:
            raise serializers.ValidationError('Send exactly one of "percent" or "distance".')
        return attrs


class OrderInputSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=["long", "short"])
    type = serializers.ChoiceField(choices=["market", "limit"])
    collateral = collateral_field(help_text="USDC.")
    leverage = leverage_field()
    price = price_field(required=False, help_text="Limit orders only.")
    stop_loss = price_field(required=False)
    take_profit = price_field(required=False)
    trailing_stop = TrailingStopSerializer(required=False)
    client_order_id = serializers.RegexField(r"^[A-Za-z0-9._:-]{1,64}$", required=False)
    rounding = serializers.ChoiceField(choices=["down", "nearest"], required=False)

    def terms(self) -> OrderTerms:
        data = self.validated_data
        trailing = data.get("trailing_stop")
        return OrderTerms(
            symbol=data["symbol"].strip().upper(),
            side=data["side"],
            type=data["type"],
            collateral=data["collateral"],
            leverage=data["leverage"],
            price=data.get("price"),
            stop_loss=data.get("stop_loss"),
            take_profit=data.get("take_profit"),
            trailing_stop={k: decimal_text(v) for k, v in trailing.items()} if trailing else None,
            client_order_id=data.get("client_order_id", ""),
            rounding=data.get("rounding"),
        )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


def plan_data(plan: OrderPlan) -> dict[str, Any]:
    return {
        "ok": True,
        "reject_code": None,
        "symbol": plan.symbol,
        "provider": plan.provider,
        "routing": plan.routing,
        "side": plan.side,
        "type": plan.type,
        "collateral": _text(plan.collateral),
        "leverage": _text(plan.leverage),
        "price": _text(plan.price),
        "entry_price": _text(plan.entry_price),
        "size": _text(plan.size),
        "notional": _text(plan.notional),
        "margin": _text(plan.collateral),
        "fees": _text(plan.fee),
        "liquidation_price": _text(plan.liquidation_price),
        "stop_loss": _text(plan.stop_loss),
        "take_profit": _text(plan.take_profit),
        "trailing_stop": plan.trailing_stop,
        "rounding": plan.rounding,
    }


class AccountApi(APIView):
    @extend_schema(responses={200: AccountSerializer}, operation_id="account_get")
    def get(self, request: Request) -> Response:
        summary = account_summary(user=_user(request))
        return Response(
            {
                "currency": "USDC",
                "available": decimal_text(summary.available),
                "margin_locked": decimal_text(summary.margin_locked),
                "equity": decimal_text(summary.equity),
                "unrealized_pnl": decimal_text(summary.unrealized_pnl),
                "open_positions": summary.open_positions,
            }
        )


class OrderPreviewApi(APIView):
    """The same checks and routing as ``POST /orders``; nothing changes. A rejection is an
    answer here (200 with ``ok: false`` and the code), not an error."""

    @extend_schema(
        request=OrderInputSerializer, responses={200: OrderPreviewSerializer}, operation_id="orders_preview"
    )
    def post(self, request: Request) -> Response:
        serializer = OrderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            plan = order_preview(user=_user(request), order=serializer.terms())
        except ApplicationError as exc:
            return Response(
                {"ok": False, "reject_code": exc.code, "message": exc.message, "details": exc.details}
            )
        return Response(plan_data(plan))


class OrderListCreateApi(ListAPIView):
    pagination_class = CursorPagination
    serializer_class = OrderSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Order.Status.values),
            OpenApiParameter("symbol", str),
        ],
        operation_id="orders_list",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        status_filter = self.request.query_params.get("status")
        if status_filter and status_filter not in Order.Status.values:
            raise serializers.ValidationError({"status": f"One of {', '.join(Order.Status.values)}."})
        return orders_for_user(
            user=_user(self.request), status=status_filter, symbol=self.request.query_params.get("symbol")
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([order_data(order) for order in page or []])

    @extend_schema(
        request=OrderInputSerializer,
        responses={201: OrderSerializer, 200: OrderSerializer, 400: ErrorSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        operation_id="orders_place",
        examples=[*ORDER_REQUEST_EXAMPLES, ORDER_RESPONSE_EXAMPLE, *ERROR_EXAMPLES],
    )
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self._place(request))

    def _place(self, request: Request) -> Response:
        serializer = OrderInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order, created = order_place(user=_user(request), order=serializer.terms())
        if created:
            return Response(order_data(order), status=status.HTTP_201_CREATED)
        return Response(order_data(order), headers={REPLAYED_HEADER: "true"})


class OrderDetailApi(APIView):
    def _order(self, request: Request, order_id: Any) -> Order:
        order = orders_for_user(user=_user(request)).filter(pk=order_id).first()
        if order is None:
            raise OrderNotFound(details={"order_id": str(order_id)})
        return order

    @extend_schema(responses={200: OrderSerializer}, operation_id="orders_get")
    def get(self, request: Request, order_id: Any) -> Response:
        return Response(order_data(self._order(request, order_id)))

    @extend_schema(responses={200: OrderSerializer}, operation_id="orders_cancel")
    def delete(self, request: Request, order_id: Any) -> Response:
        return Response(order_data(order_cancel(order_id=order_id, user=_user(request))))


def _marked_data(positions: list[Position]) -> list[dict[str, Any]]:
    return [
        position_data(m.position, mark_price=m.mark_price, unrealized_pnl=m.unrealized_pnl)
        for m in positions_marked(positions)
    ]


class PositionListApi(ListAPIView):
    pagination_class = CursorPagination
    serializer_class = PositionSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=[*Position.Status.values, "all"],
                description="open by default (open includes closing: a close pending at the venue)",
            )
        ],
        operation_id="positions_list",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        wanted = self.request.query_params.get("status", Position.Status.OPEN)
        if wanted not in [*Position.Status.values, "all"]:
            raise serializers.ValidationError({"status": "open, closing, closed, liquidated or all."})
        return positions_for_user(user=_user(self.request), status=None if wanted == "all" else wanted)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(_marked_data(list(page or [])))


class PositionDetailApi(APIView):
    class ProtectionSerializer(serializers.Serializer):
        stop_loss = price_field(required=False, allow_null=True, help_text="null removes it.")
        take_profit = price_field(required=False, allow_null=True, help_text="null removes it.")
        trailing_stop = TrailingStopSerializer(required=False, allow_null=True)

        def protection(self) -> Protection:
            data = self.validated_data
            trailing = data.get("trailing_stop") or {}
            return Protection(
                stop_loss=data.get("stop_loss"),
                take_profit=data.get("take_profit"),
                trail_percent=trailing.get("percent"),
                trail_distance=trailing.get("distance"),
                clear_stop_loss="stop_loss" in data and data["stop_loss"] is None,
                clear_take_profit="take_profit" in data and data["take_profit"] is None,
                clear_trailing_stop="trailing_stop" in data and data["trailing_stop"] is None,
            )

    def _position(self, request: Request, position_id: Any) -> Position:
        position = positions_for_user(user=_user(request), status=None).filter(pk=position_id).first()
        if position is None:
            raise PositionNotFound(details={"position_id": str(position_id)})
        return position

    @extend_schema(responses={200: PositionSerializer}, operation_id="positions_get")
    def get(self, request: Request, position_id: Any) -> Response:
        return Response(_marked_data([self._position(request, position_id)])[0])

    @extend_schema(
        request=ProtectionSerializer,
        responses={200: PositionSerializer},
        operation_id="positions_update",
        examples=PROTECTION_UPDATE_EXAMPLES,
    )
    def patch(self, request: Request, position_id: Any) -> Response:
        serializer = self.ProtectionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not serializer.validated_data:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send stop_loss, take_profit or trailing_stop."]}
            )
        position_protection_update(
            position_id=position_id, user=_user(request), protection=serializer.protection()
        )
        return Response(_marked_data([self._position(request, position_id)])[0])


class PositionCloseApi(APIView):
    class InputSerializer(serializers.Serializer):
        type = serializers.ChoiceField(choices=["market", "limit"], default="market")
        price = price_field(required=False, help_text="Limit closes only.")
        size = size_field(required=False, help_text="Part of the position to close; all of it if left out.")
        rounding = serializers.ChoiceField(choices=["down", "nearest"], required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if (attrs["type"] == "limit") != ("price" in attrs):
                raise serializers.ValidationError(
                    {"price": "A limit close needs a price; a market close takes none."}
                )
            return attrs

    @extend_schema(
        request=InputSerializer,
        responses={201: OrderSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        operation_id="positions_close",
        examples=POSITION_CLOSE_EXAMPLES,
    )
    def post(self, request: Request, position_id: Any) -> Response:
        return idempotent(request, lambda: self._close(request, position_id))

    def _close(self, request: Request, position_id: Any) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["type"] == "limit":
            order = position_close_limit(
                position_id=position_id,
                user=_user(request),
                price=data["price"],
                size=data.get("size"),
                rounding=data.get("rounding"),
            )
            return Response(order_data(order), status=status.HTTP_201_CREATED)
        closed = position_close(
            position_id=position_id, user=_user(request), size=data.get("size"), rounding=data.get("rounding")
        )
        assert closed is not None  # only a trigger finds the position gone without an error
        return Response(order_data(closed), status=status.HTTP_201_CREATED)


class TradeListApi(ListAPIView):
    pagination_class = CursorPagination
    serializer_class = FillSerializer

    @extend_schema(operation_id="trades_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        user: Any = self.request.user
        fills = Fill.objects.filter(user=user)
        symbol = self.request.query_params.get("symbol")
        return fills.filter(symbol=symbol.strip().upper()) if symbol else fills

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([fill_data(fill) for fill in page or []])
