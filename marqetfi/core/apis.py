from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any, ClassVar, cast
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.generics import ListAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marqetfi.core import health
from marqetfi.core.api import CursorPagination
from marqetfi.core.authentication import JWTAuthentication
from marqetfi.core.events import event_payload
from marqetfi.core.models import Event
from marqetfi.core.permissions import StaffPermission
from marqetfi.core.schema import ErrorSerializer
from marqetfi.core.throttling import AnonRateThrottle, HealthRateThrottle, StaffRateThrottle


class HealthApi(APIView):
    """Liveness and readiness: 200 when every critical check passes, 503 otherwise."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [HealthRateThrottle]

    class CheckSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        critical = serializers.BooleanField()
        latency_ms = serializers.FloatField()
        detail = serializers.CharField()

    class OutputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=["ok", "degraded", "down"])
        checks = serializers.DictField()
        providers = serializers.DictField(
            child=inline_serializer(
                "HealthProvider",
                fields={
                    "enabled": serializers.BooleanField(required=False),
                    "configured": serializers.BooleanField(required=False),
                    "state": serializers.ChoiceField(choices=["closed", "open", "half_open"], required=False),
                    "error_rate": serializers.FloatField(required=False),
                    "calls": serializers.IntegerField(required=False),
                    "latency_ms_p95": serializers.FloatField(required=False, allow_null=True),
                    "opened_at": serializers.DateTimeField(required=False, allow_null=True),
                    "probed_at": serializers.DateTimeField(required=False, allow_null=True),
                    "probe_outcome": serializers.CharField(required=False, allow_null=True),
                    "error": serializers.CharField(required=False),
                },
            ),
            help_text="Per provider: circuit breaker and call figures over the stats window. "
            "Informative only: providers never change the status code.",
        )

    @extend_schema(
        responses={200: OutputSerializer, 503: OutputSerializer, 429: ErrorSerializer}, operation_id="health"
    )
    def get(self, request: Request) -> Response:
        results = health.checks_cached()
        critical_ok = all(r.ok for r in results if r.critical)
        status = "down" if not critical_ok else ("ok" if all(r.ok for r in results) else "degraded")
        database_ok = all(r.ok for r in results if r.name == "database")
        body = {
            "status": status,
            "checks": {r.name: self.CheckSerializer(r).data for r in results},
            # The report reads each provider's configuration from the database: with the
            # database out of reach every read would wait out the pool's timeout in turn.
            "providers": health.provider_report() if database_ok else {},
        }
        return Response(body, status=200 if critical_ok else 503)


class EventPagination(CursorPagination):
    ordering = "seq"


class EventListApi(ListAPIView):
    """The caller's event stream in sequence order; ``after_seq`` resumes after a known event."""

    pagination_class = EventPagination

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        type = serializers.CharField()
        seq = serializers.IntegerField()
        created_at = serializers.CharField()
        data = serializers.DictField()  # type: ignore[assignment]  # a field, popped by the metaclass

        def to_representation(self, instance: Event) -> dict[str, Any]:
            return event_payload(instance)

    serializer_class = OutputSerializer

    class FilterSerializer(serializers.Serializer):
        # The bound of the seq column: a larger number would overflow the query, not page.
        after_seq = serializers.IntegerField(min_value=0, max_value=2**63 - 1, required=False, default=0)
        type = serializers.CharField(required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("after_seq", int, description="Only events with a greater seq."),
            OpenApiParameter("type", str, description="Only events of this type (e.g. order.filled)."),
        ],
        operation_id="events_list",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Event]:
        filters = self.FilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = Event.objects.filter(
            user_id=cast(UUID, self.request.user.pk), seq__gt=filters.validated_data["after_seq"]
        )
        if event_type := filters.validated_data.get("type"):
            queryset = queryset.filter(type=event_type)
        return queryset


class StaffApi(APIView):
    """Base of every staff endpoint under /api/v1/admin/: a signed-in operator (``is_staff``)
    holding the permission ``staff_permissions`` names for the method; 401 without a token,
    403 for traders and for operators without that permission. A method left out of
    ``staff_permissions`` is for superusers only."""

    permission_classes = [StaffPermission]
    throttle_classes = [AnonRateThrottle, StaffRateThrottle]
    staff_permissions: ClassVar[dict[str, str]] = {}


METRICS_SCRAPER = "metrics-scraper"  # request.auth of a caller holding METRICS_TOKEN


class MetricsScraperAuthentication(BaseAuthentication):
    """``Authorization: Bearer <METRICS_TOKEN>``: a Prometheus scraper, no user. Any other
    bearer value is left to the next class (a staff access token)."""

    def authenticate(self, request: Request) -> tuple[None, str] | None:
        expected = settings.METRICS_TOKEN
        scheme, _, presented = get_authorization_header(request).decode("latin-1").partition(" ")
        if not expected or scheme.lower() != "bearer":
            return None
        if hmac.compare_digest(presented.strip().encode(), expected.encode()):
            return None, METRICS_SCRAPER
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="metrics"'


class MetricsReaderPermission(BasePermission):
    """The scraper's token, or a signed-in active staff member."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.auth == METRICS_SCRAPER:
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class AnyAcceptNegotiation(BaseContentNegotiation):
    """The exposition is text whatever the client accepts (scrapers ask for OpenMetrics or
    ``text/plain``); errors are the API's JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class MetricsApi(APIView):
    """``GET /metrics``: the Prometheus exposition (django-prometheus), for a scraper holding
    ``METRICS_TOKEN`` or for staff (an access token, or the admin's session in a browser).
    Anyone else gets 401 / 403 in the API's error shape. Not part of the API schema."""

    authentication_classes = [MetricsScraperAuthentication, JWTAuthentication, SessionAuthentication]
    permission_classes = [MetricsReaderPermission]
    throttle_classes = [AnonRateThrottle, StaffRateThrottle]
    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        response: HttpResponse = ExportToDjangoView(request._request)
        return response
