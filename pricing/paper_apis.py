"""Staff endpoint that drives the paper venue: ``POST /api/v1/admin/paper/prices``."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from marqetfi.core.api import DecimalStringField, decimal_output
from marqetfi.core.apis import StaffApi
from pricing.services.paper import paper_price_drive

MAX_PRICE = Decimal(10) ** 12


class PaperPriceSetApi(StaffApi):
    """Set a pair's paper price now (demos, drills, black-box tests); the walk continues from
    there and the price flows through the feed like a real tick. 409 ``paper_venue_disabled``
    while operators have the paper venue switched off."""

    staff_permissions = {"POST": "pricing.set_paper_price"}

    class InputSerializer(serializers.Serializer):
        symbol = serializers.CharField(max_length=32)
        price = DecimalStringField(
            min_value=0, min_exclusive=True, max_value=MAX_PRICE, max_decimal_places=18
        )

    class OutputSerializer(serializers.Serializer):
        symbol = serializers.CharField()
        bid = decimal_output()
        ask = decimal_output()
        mid = decimal_output()
        ts = serializers.DateTimeField()

    @extend_schema(
        request=InputSerializer, responses={200: OutputSerializer}, operation_id="admin_paper_prices_set"
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        quote = paper_price_drive(symbol=data.validated_data["symbol"], price=data.validated_data["price"])
        return Response(
            self.OutputSerializer(
                {"symbol": quote.symbol, "bid": quote.bid, "ask": quote.ask, "mid": quote.mid, "ts": quote.ts}
            ).data
        )
