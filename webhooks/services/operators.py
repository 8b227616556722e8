"""What operators do to users' webhooks from the admin: resend deliveries, recover an endpoint's
failed deliveries. Each goes through the delivery engine's own services and is audited."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from marqetfi.core.audit import audit_record
from webhooks.errors import WebhookEndpointDisabled
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.delivery import delivery_redeliver, endpoint_recover_request

RECOVER_WINDOW = timedelta(hours=24)


@dataclass
class OperatorOutcome:
    done: list[str] = field(default_factory=list)
    skipped_disabled: list[str] = field(default_factory=list)


def deliveries_operator_redeliver(*, delivery_ids: Iterable[Any], actor: Any) -> OperatorOutcome:
    """Redeliver each delivery; those of a disabled endpoint are skipped (and reported)."""
    outcome = OperatorOutcome()
    for delivery in WebhookDelivery.objects.filter(pk__in=list(delivery_ids)).order_by("event_seq", "pk"):
        try:
            with transaction.atomic():
                delivery_redeliver(delivery)
                audit_record(
                    actor=actor,
                    action="webhook_delivery.redeliver",
                    target_type="webhook_delivery",
                    target_id=delivery.pk,
                    changes={"endpoint_id": str(delivery.endpoint_id), "status_before": delivery.status},
                )
        except WebhookEndpointDisabled:
            outcome.skipped_disabled.append(str(delivery.pk))
        else:
            outcome.done.append(str(delivery.pk))
    return outcome


def endpoints_operator_recover(*, endpoint_ids: Iterable[Any], actor: Any) -> OperatorOutcome:
    """Ask each endpoint to resend its failed deliveries of the last 24 hours; disabled ones
    are skipped (and reported)."""
    outcome = OperatorOutcome()
    since = timezone.now() - RECOVER_WINDOW
    for endpoint in WebhookEndpoint.objects.filter(pk__in=list(endpoint_ids)).order_by("pk"):
        try:
            with transaction.atomic():
                recovery = endpoint_recover_request(endpoint, since=since)
                audit_record(
                    actor=actor,
                    action="webhook_endpoint.recover",
                    target_type="webhook_endpoint",
                    target_id=endpoint.pk,
                    changes={"recovery_id": str(recovery.pk), "since": since.isoformat()},
                )
        except WebhookEndpointDisabled:
            outcome.skipped_disabled.append(str(endpoint.pk))
        else:
            outcome.done.append(str(endpoint.pk))
    return outcome
