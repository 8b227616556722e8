"""Public market data: the pair catalogue and prices (no sign-in needed, default rate limits)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marqetfi.core.api import CursorPagination, decimal_output
from marqetfi.core.errors import ApplicationError
from pricing.market_hours import market_state
from pricing.models import PairListing, TradingPair
from pricing.selectors import pair_listings_list
from pricing.services.prices import price_body, price_get, prices_get
from providers import registry

MAX_SYMBOLS_PER_REQUEST = 100


class PriceSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    bid = decimal_output()
    ask = decimal_output()
    mid = decimal_output()
    provider = serializers.CharField(help_text="The venue the price came from.")
    ts = serializers.DateTimeField(help_text="When the venue quoted it.")
    age_ms = serializers.IntegerField(help_text="Milliseconds between ts and this answer.")
    stale = serializers.BooleanField(help_text="Older than the staleness limit of the pair's category.")
    market = serializers.ChoiceField(choices=["open", "closed"])


def _error_entry(error: ApplicationError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "details": error.details}


class PairPagination(CursorPagination):
    # The cursor is the symbol; provider orders a symbol's listings the same way on every page.
    ordering = ("symbol", "provider")  # type: ignore[assignment]  # DRF takes a tuple too


class PairListApi(ListAPIView):
    """Tradable pairs, one row per venue listing them, by symbol; ``market`` is the state now."""

    permission_classes = [AllowAny]
    pagination_class = PairPagination

    class FilterSerializer(serializers.Serializer):
        category = serializers.ChoiceField(choices=TradingPair.Category.choices, required=False)
        provider = serializers.CharField(required=False, max_length=40)

        def validate_provider(self, value: str) -> str:
            venues = registry.provider_names("venue")
            if value not in venues:
                raise serializers.ValidationError(f"Unknown venue. Known: {', '.join(venues)}.")
            return value

    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField(source="pair.symbol")
        display_name = serializers.CharField(source="pair.display_name")
        category = serializers.CharField(source="pair.category")
        provider = serializers.CharField()
        venue_symbol = serializers.CharField()
        tick_size = decimal_output()
        size_step = decimal_output()
        min_collateral = decimal_output(help_text="USDC")
        max_leverage = decimal_output()
        trading_hours = serializers.CharField(source="pair.trading_hours")
        market = serializers.SerializerMethodField()

        def get_market(self, listing: PairListing) -> str:
            return market_state(listing.pair.trading_hours, self.context["now"])

    serializer_class = OutputSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "category", str, enum=TradingPair.Category.values, description="Only this category."
            ),
            OpenApiParameter("provider", str, description="Only pairs this venue lists (e.g. lighter)."),
        ],
        operation_id="pairs_list",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}

    def get_queryset(self) -> QuerySet[PairListing]:
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return pair_listings_list(**filters.validated_data)


class MaxAgeSerializer(serializers.Serializer):
    max_age_ms = serializers.IntegerField(
        required=False, min_value=0, help_text="Refetch from the venue any cached price older than this."
    )


class PriceDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("symbol", str, OpenApiParameter.PATH, description="BTCUSD, EURUSD, ..."),
            MaxAgeSerializer,
        ],
        responses={200: PriceSerializer},
        operation_id="prices_get",
    )
    def get(self, request: Request, symbol: str) -> Response:
        params = MaxAgeSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return Response(price_body(price_get(symbol, max_age_ms=params.validated_data.get("max_age_ms"))))


class PriceListApi(APIView):
    """Many prices at once; a bad or unknown symbol, or a venue down, fails only its own entry."""

    permission_classes = [AllowAny]

    class InputSerializer(MaxAgeSerializer):
        symbols = serializers.CharField(
            help_text=f"Comma-separated, up to {MAX_SYMBOLS_PER_REQUEST}: BTCUSD,ETHUSD,EURUSD"
        )

        def validate_symbols(self, value: str) -> list[str]:
            symbols = [symbol.strip() for symbol in value.split(",") if symbol.strip()]
            if not symbols:
                raise serializers.ValidationError("Name at least one symbol.")
            if len(symbols) > MAX_SYMBOLS_PER_REQUEST:
                raise serializers.ValidationError(f"At most {MAX_SYMBOLS_PER_REQUEST} symbols per request.")
            return symbols

    @extend_schema(
        parameters=[InputSerializer],
        responses={
            200: inline_serializer(
                "PriceList",
                {
                    "prices": PriceSerializer(many=True),
                    "errors": serializers.DictField(
                        child=inline_serializer(
                            "PriceError",
                            {
                                "code": serializers.CharField(),
                                "message": serializers.CharField(),
                                "details": serializers.DictField(),
                            },
                        ),
                        help_text="Per symbol that has no price: unknown_symbol, no_venue_available, "
                        "price_unavailable.",
                    ),
                },
            )
        },
        operation_id="prices_list",
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        prices, errors = prices_get(
            params.validated_data["symbols"], max_age_ms=params.validated_data.get("max_age_ms")
        )
        return Response(
            {
                "prices": [price_body(price) for price in prices],
                "errors": {symbol: _error_entry(error) for symbol, error in errors.items()},
            }
        )
