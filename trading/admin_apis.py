"""Staff API of trading (under /api/v1/admin/): risk limits, positions across users, and
reconciliation with the venues (drifts, resolving them, a run on demand)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from marqetfi.core.api import CursorPagination, DecimalStringField, decimal_output
from marqetfi.core.apis import StaffApi
from marqetfi.core.formats import timestamp_text
from trading.apis import MAX_LEVERAGE, USDC_PLACES
from trading.errors import RiskLimitNotFound
from trading.models import Position, ReconciliationDrift, RiskLimit
from trading.presenters import position_data
from trading.schemas import PositionSerializer
from trading.selectors import positions_marked
from trading.services.reconciliation import reconciliation_drift_resolve, reconciliation_run
from trading.services.risk_limits import (
    risk_limit_create,
    risk_limit_delete,
    risk_limit_public,
    risk_limit_update,
)

MAX_NOTIONAL = Decimal(10) ** 15  # USDC


# --- risk limits ----------------------------------------------------------------------------


def risk_limit_data(limit: RiskLimit) -> dict[str, Any]:
    return {
        "id": str(limit.pk),
        **risk_limit_public(limit),
        "user_email": limit.user.email if limit.user_id and limit.user else None,
        "created_at": timestamp_text(limit.created_at),
        "updated_at": timestamp_text(limit.updated_at),
    }


class RiskLimitSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    user_id = serializers.UUIDField(allow_null=True, help_text="null: every user")
    symbol = serializers.CharField(help_text='"": every pair')
    max_leverage = decimal_output(allow_null=True)
    max_position_notional = decimal_output(allow_null=True, help_text="USDC, per position (size x price)")
    max_total_notional = decimal_output(allow_null=True, help_text="USDC, all open positions of the user")
    max_open_positions = serializers.IntegerField(allow_null=True)
    liquidation_level = decimal_output(allow_null=True, help_text="Share of collateral left at liquidation")
    note = serializers.CharField()
    user_email = serializers.EmailField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def _notional_limit_field() -> DecimalStringField:
    """A risk limit on notional (USDC); null clears it."""
    return DecimalStringField(
        min_value=0,
        min_exclusive=True,
        max_value=MAX_NOTIONAL,
        max_decimal_places=USDC_PLACES,
        required=False,
        allow_null=True,
        help_text="USDC.",
    )


class RiskLimitInputSerializer(serializers.Serializer):
    """A limit left out (or null) is not set at this scope: a less specific row or the default applies."""

    user_id = serializers.PrimaryKeyRelatedField(
        queryset=User.objects.all(),
        source="user",
        allow_null=True,
        required=False,
        help_text="null: everyone",
    )
    symbol = serializers.CharField(
        max_length=32, allow_blank=True, required=False, help_text='"": every pair'
    )
    max_leverage = DecimalStringField(
        min_value=0,
        min_exclusive=True,
        max_value=MAX_LEVERAGE,
        max_decimal_places=2,
        required=False,
        allow_null=True,
        help_text="At least 1 (invalid_risk_limit below).",
    )
    max_position_notional = _notional_limit_field()
    max_total_notional = _notional_limit_field()
    max_open_positions = serializers.IntegerField(
        min_value=0, max_value=1_000_000, required=False, allow_null=True
    )
    liquidation_level = DecimalStringField(
        min_value=0,
        min_exclusive=True,
        max_value=1,
        max_decimal_places=4,
        required=False,
        allow_null=True,
        help_text="Strictly between 0 and 1 (1 answers invalid_risk_limit).",
    )
    note = serializers.CharField(max_length=200, allow_blank=True, required=False)


class RiskLimitListApi(StaffApi, ListAPIView):
    staff_permissions = {"GET": "trading.view_risklimit", "POST": "trading.add_risklimit"}

    pagination_class = CursorPagination
    serializer_class = RiskLimitSerializer

    class FilterSerializer(serializers.Serializer):
        user = serializers.UUIDField(required=False, help_text="Limits of this user only")
        symbol = serializers.CharField(max_length=32, required=False)

    @extend_schema(parameters=[FilterSerializer], operation_id="admin_risk_limits_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[RiskLimit]:
        filters = self.FilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        limits = RiskLimit.objects.select_related("user")
        if "user" in filters.validated_data:
            limits = limits.filter(user_id=filters.validated_data["user"])
        if "symbol" in filters.validated_data:
            limits = limits.filter(symbol=filters.validated_data["symbol"].strip().upper())
        return limits

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([risk_limit_data(limit) for limit in page or []])

    @extend_schema(
        request=RiskLimitInputSerializer,
        responses={201: RiskLimitSerializer},
        operation_id="admin_risk_limits_create",
    )
    def post(self, request: Request) -> Response:
        data = RiskLimitInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        limit = risk_limit_create(actor=cast(User, request.user), **data.validated_data)
        return Response(risk_limit_data(limit), status=status.HTTP_201_CREATED)


class RiskLimitDetailApi(StaffApi):
    staff_permissions = {
        "GET": "trading.view_risklimit",
        "PATCH": "trading.change_risklimit",
        "DELETE": "trading.delete_risklimit",
    }

    def _limit(self, risk_limit_id: Any) -> RiskLimit:
        limit = RiskLimit.objects.select_related("user").filter(pk=risk_limit_id).first()
        if limit is None:
            raise RiskLimitNotFound(details={"risk_limit_id": str(risk_limit_id)})
        return limit

    @extend_schema(responses={200: RiskLimitSerializer}, operation_id="admin_risk_limits_get")
    def get(self, request: Request, risk_limit_id: Any) -> Response:
        return Response(risk_limit_data(self._limit(risk_limit_id)))

    @extend_schema(
        request=RiskLimitInputSerializer,
        responses={200: RiskLimitSerializer},
        operation_id="admin_risk_limits_update",
    )
    def patch(self, request: Request, risk_limit_id: Any) -> Response:
        data = RiskLimitInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        risk_limit_update(risk_limit_id=risk_limit_id, actor=cast(User, request.user), **data.validated_data)
        return Response(risk_limit_data(self._limit(risk_limit_id)))

    @extend_schema(responses={204: None}, operation_id="admin_risk_limits_delete")
    def delete(self, request: Request, risk_limit_id: Any) -> Response:
        risk_limit_delete(risk_limit_id=risk_limit_id, actor=cast(User, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- positions across users -----------------------------------------------------------------


class AdminPositionSerializer(PositionSerializer):
    # Plain text here: the choice set is documented once, on Position.
    status = serializers.CharField(help_text="open, closed or liquidated")  # type: ignore[assignment]
    user_id = serializers.UUIDField()
    user_email = serializers.EmailField(allow_null=True)
    category = serializers.CharField()
    margin_called_at = serializers.DateTimeField(allow_null=True)
    liquidation_level = decimal_output(help_text="Share of collateral left at which it is liquidated")
    margin_call_level = decimal_output()


def admin_positions_data(positions: list[Position]) -> list[dict[str, Any]]:
    """Positions with their owner, risk levels and (open ones) live mark and P&L."""
    return [
        {
            **position_data(m.position, mark_price=m.mark_price, unrealized_pnl=m.unrealized_pnl),
            "user_id": str(m.position.user_id),
            "user_email": m.position.user.email,
            "category": m.position.category,
            "margin_called_at": timestamp_text(m.position.margin_called_at)
            if m.position.margin_called_at
            else None,
            "liquidation_level": str(m.position.liquidation_level.normalize()),
            "margin_call_level": str(m.position.margin_call_level.normalize()),
        }
        for m in positions_marked(positions)
    ]


class AdminPositionListApi(StaffApi, ListAPIView):
    """Every user's positions, newest first; breaches (margin-called or liquidated) on request."""

    staff_permissions = {"GET": "trading.view_position"}

    pagination_class = CursorPagination
    serializer_class = AdminPositionSerializer

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=[*Position.Status.values, "all"], default="all")
        user = serializers.UUIDField(required=False, help_text="One user's positions")
        symbol = serializers.CharField(max_length=32, required=False)
        provider = serializers.CharField(max_length=40, required=False)
        margin_called = serializers.BooleanField(
            required=False, help_text="true: margin-called positions only; false: never margin-called"
        )
        breaches = serializers.BooleanField(
            required=False, help_text="true: margin-called or liquidated positions only"
        )

    @extend_schema(parameters=[FilterSerializer], operation_id="admin_positions_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Position]:
        filters = self.FilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        positions = Position.objects.select_related("user").prefetch_related("protective_orders")
        if wanted["status"] != "all":
            positions = positions.filter(status=wanted["status"])
        if "user" in wanted:
            positions = positions.filter(user_id=wanted["user"])
        if "symbol" in wanted:
            positions = positions.filter(symbol=wanted["symbol"].strip().upper())
        if "provider" in wanted:
            positions = positions.filter(provider=wanted["provider"])
        if "margin_called" in wanted:
            positions = positions.filter(margin_called_at__isnull=not wanted["margin_called"])
        if wanted.get("breaches"):
            positions = positions.filter(
                Q(margin_called_at__isnull=False) | Q(status=Position.Status.LIQUIDATED)
            )
        return positions

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(admin_positions_data(list(page or [])))


# --- reconciliation -------------------------------------------------------------------------


def drift_data(drift: ReconciliationDrift) -> dict[str, Any]:
    return {
        "id": str(drift.pk),
        "venue": drift.venue,
        "account_ref": drift.account_ref,
        "kind": drift.kind,
        "status": drift.status,
        "symbol": drift.symbol,
        "user_id": str(drift.user_id) if drift.user_id else None,
        "our_ref": drift.our_ref,
        "venue_ref": drift.venue_ref,
        "details": drift.details,
        "occurrences": drift.occurrences,
        "detected_at": timestamp_text(drift.detected_at),
        "last_seen_at": timestamp_text(drift.last_seen_at),
        "resolved_at": timestamp_text(drift.resolved_at) if drift.resolved_at else None,
        "resolved_by": str(drift.resolved_by_id) if drift.resolved_by_id else None,
        "resolution": drift.resolution,
    }


class ReconciliationDriftSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    venue = serializers.CharField()
    account_ref = serializers.CharField(help_text="The venue account compared")
    kind = serializers.ChoiceField(choices=ReconciliationDrift.Kind.values)
    status = serializers.ChoiceField(choices=ReconciliationDrift.Status.values)
    symbol = serializers.CharField()
    user_id = serializers.UUIDField(allow_null=True)
    our_ref = serializers.CharField(help_text="Our position id(s) or order id; empty: none of ours")
    venue_ref = serializers.CharField(help_text="The venue's position or order id; empty: none there")
    details = serializers.DictField(help_text="Sizes, prices and statuses on both sides, as text")
    occurrences = serializers.IntegerField(help_text="Runs that found it")
    detected_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.UUIDField(allow_null=True, help_text="The operator; null: reconciliation")
    resolution = serializers.CharField()


class ReconciliationDriftListApi(StaffApi, ListAPIView):
    """Drifts between the venues' books and ours, newest first."""

    staff_permissions = {"GET": "trading.view_reconciliationdrift"}

    pagination_class = CursorPagination
    serializer_class = ReconciliationDriftSerializer

    class FilterSerializer(serializers.Serializer):
        venue = serializers.CharField(max_length=40, required=False)
        kind = serializers.ChoiceField(choices=ReconciliationDrift.Kind.values, required=False)
        status = serializers.ChoiceField(choices=[*ReconciliationDrift.Status.values, "all"], default="all")
        account_ref = serializers.CharField(max_length=128, required=False)
        user = serializers.UUIDField(required=False)

    @extend_schema(parameters=[FilterSerializer], operation_id="admin_reconciliation_drifts_list")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[ReconciliationDrift]:
        filters = self.FilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        drifts = ReconciliationDrift.objects.all()
        if wanted["status"] != "all":
            drifts = drifts.filter(status=wanted["status"])
        for name in ("venue", "kind", "account_ref"):
            if name in wanted:
                drifts = drifts.filter(**{name: wanted[name]})
        if "user" in wanted:
            drifts = drifts.filter(user_id=wanted["user"])
        return drifts

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([drift_data(drift) for drift in page or []])


class ReconciliationDriftResolveApi(StaffApi):
    """Close an open drift by hand (looked into, put right at the venue or here); audited."""

    staff_permissions = {"POST": "trading.resolve_drift"}

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(
        request=InputSerializer,
        responses={200: ReconciliationDriftSerializer},
        operation_id="admin_reconciliation_drifts_resolve",
    )
    def post(self, request: Request, drift_id: Any) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        drift = reconciliation_drift_resolve(
            drift_id=drift_id, actor=cast(User, request.user), reason=data.validated_data["reason"]
        )
        return Response(drift_data(drift))


class ReconciliationRunApi(StaffApi):
    """Reconcile every venue now (as the beat task does) and answer with what it found."""

    staff_permissions = {"POST": "trading.run_reconciliation"}

    class OutputSerializer(serializers.Serializer):
        venues = serializers.ListField(
            child=serializers.DictField(),
            help_text="Per venue: venue, ok, error, accounts, found, opened, repaired, resolved",
        )
        drifts_found = serializers.IntegerField()
        drifts_opened = serializers.IntegerField()
        drifts_repaired = serializers.IntegerField()
        drifts_resolved = serializers.IntegerField()

    @extend_schema(request=None, responses={200: OutputSerializer}, operation_id="admin_reconciliation_run")
    def post(self, request: Request) -> Response:
        return Response(reconciliation_run().as_dict())
