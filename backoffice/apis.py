"""Operators' cross-app API under /api/v1/admin/: platform analytics and the audit list.

It composes figures of several apps (accounts, trading, the outbox), so it lives above them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import AuthIdentity, User, Wallet
from marqetfi.core.apis import StaffApi
from marqetfi.core.models import AuditEntry, Event
from trading.analytics import platform_exposure, platform_figures
from trading.analytics_apis import platform_exposure_data, platform_figures_data

TRADING_WINDOWS = {"24h": timedelta(hours=24), "30d": timedelta(days=30)}


def _trading_figures(now: datetime) -> dict[str, Any]:
    """Open positions and open interest now; volume, fees, P&L, orders and risk events per window."""
    return {
        "currency": "USDC",
        "now": platform_exposure_data(platform_exposure()),
        **{
            name: platform_figures_data(platform_figures(start=now - length, end=now))
            for name, length in TRADING_WINDOWS.items()
        },
    }


class AdminAnalyticsApi(StaffApi):
    """Platform figures for operators: users, sign-in methods, wallets, events and trading;
    deposit figures join as that part lands."""

    staff_permissions = {"GET": "accounts.view_user"}

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, operation_id="admin_analytics")
    def get(self, request: Request) -> Response:
        now = timezone.now()
        users = User.objects.aggregate(
            total=Count("pk"),
            new_7d=Count("pk", filter=Q(date_joined__gte=now - timedelta(days=7))),
            active_30d=Count("pk", filter=Q(last_login__gte=now - timedelta(days=30))),
            disabled=Count("pk", filter=Q(is_active=False)),
            trading_disabled=Count("pk", filter=Q(trading_enabled=False)),
        )
        sign_in_methods = dict(AuthIdentity.objects.values_list("method").annotate(n=Count("pk")).order_by())
        wallets = dict(Wallet.objects.values_list("provider").annotate(n=Count("pk")).order_by())
        return Response(
            {
                "users": users,
                "sign_in_methods": sign_in_methods,
                "wallets_by_provider": wallets,
                "events_24h": Event.objects.filter(created_at__gte=now - timedelta(days=1)).count(),
                "trading": _trading_figures(now),
            }
        )


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    actor = serializers.EmailField(source="actor.email", allow_null=True, default=None)

    class Meta:
        model = AuditEntry
        fields = ("id", "created_at", "actor", "action", "target_type", "target_id", "changes", "request_id")


class AdminAuditListApi(StaffApi, ListAPIView):
    staff_permissions = {"GET": "core.view_auditentry"}

    serializer_class = AuditEntrySerializer

    def get_queryset(self) -> QuerySet[AuditEntry]:
        entries = AuditEntry.objects.select_related("actor")
        if target_type := self.request.query_params.get("target_type"):
            entries = entries.filter(target_type=target_type)
        if target_id := self.request.query_params.get("target_id"):
            entries = entries.filter(target_id=target_id)
        return entries
