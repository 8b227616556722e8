"""Reads of webhooks, always scoped to one user: another user's rows are simply not there."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from webhooks.errors import WebhookDeliveryNotFound, WebhookEndpointNotFound, WebhookRecoveryNotFound
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookRecovery

HEALTH_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class DeliveryFilters:
    endpoint_id: Any = None
    status: str | None = None
    event_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def endpoints_for_user(*, user: User) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(user=user)


def endpoint_get_for_user(*, user: User, endpoint_id: Any) -> WebhookEndpoint:
    endpoint = endpoints_for_user(user=user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise WebhookEndpointNotFound(details={"endpoint_id": str(endpoint_id)})
    return endpoint


def deliveries_for_user(*, user: User, filters: DeliveryFilters | None = None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.filter(user=user)
    f = filters or DeliveryFilters()
    if f.endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=f.endpoint_id)
    if f.status:
        deliveries = deliveries.filter(status=f.status)
    if f.event_type:
        deliveries = deliveries.filter(event_type=f.event_type)
    if f.created_after is not None:
        deliveries = deliveries.filter(created_at__gte=f.created_after)
    if f.created_before is not None:
        deliveries = deliveries.filter(created_at__lt=f.created_before)
    return deliveries


def delivery_get_for_user(*, user: User, delivery_id: Any) -> WebhookDelivery:
    delivery = (
        WebhookDelivery.objects.filter(user=user, pk=delivery_id).prefetch_related("attempt_log").first()
    )
    if delivery is None:
        raise WebhookDeliveryNotFound(details={"delivery_id": str(delivery_id)})
    return delivery


def recovery_get_for_user(*, user: User, recovery_id: Any) -> WebhookRecovery:
    recovery = WebhookRecovery.objects.filter(user=user, pk=recovery_id).first()
    if recovery is None:
        raise WebhookRecoveryNotFound(details={"recovery_id": str(recovery_id)})
    return recovery


def endpoints_with_health(
    endpoints: QuerySet[WebhookEndpoint], *, now: datetime | None = None
) -> QuerySet[WebhookEndpoint]:
    """Each endpoint with its attempts of the last 7 days, in one query: ``recent_attempts``,
    ``recent_successes`` and ``recent_avg_latency_ms`` (None without attempts)."""
    since = (now or timezone.now()) - HEALTH_WINDOW
    recent = Q(deliveries__attempt_log__started_at__gte=since)
    return endpoints.annotate(
        recent_attempts=Count("deliveries__attempt_log", filter=recent),
        recent_successes=Count(
            "deliveries__attempt_log", filter=recent & Q(deliveries__attempt_log__succeeded=True)
        ),
        recent_avg_latency_ms=Avg("deliveries__attempt_log__latency_ms", filter=recent),
    )
