"""Operator alerts: a row in the admin (``OperatorAlert``) and an ERROR log line for the pager."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from marqetfi.core.models import OperatorAlert

logger = logging.getLogger("marqetfi.alerts")


def operator_alert_raise(
    *,
    source: str,
    code: str,
    message: str,
    reference: str = "",
    details: dict[str, Any] | None = None,
    severity: str = OperatorAlert.Severity.WARNING,
) -> OperatorAlert:
    """Open an alert, or count one more occurrence of the same open alert."""
    logger.error("Operator alert %s.%s %s: %s", source, code, reference, message)
    now = timezone.now()
    open_alerts = OperatorAlert.objects.filter(
        source=source, code=code, reference=reference, acknowledged_at__isnull=True
    )
    if open_alerts.update(
        occurrences=F("occurrences") + 1, last_raised_at=now, message=message, details=details or {}
    ):
        return open_alerts.get()
    try:
        with transaction.atomic():
            return OperatorAlert.objects.create(
                source=source,
                code=code,
                reference=reference,
                message=message,
                details=details or {},
                severity=severity,
            )
    except IntegrityError:  # raised concurrently: the other one opened it
        return open_alerts.get()


def operator_alert_acknowledge(*, alert: OperatorAlert, actor: Any) -> OperatorAlert:
    if alert.acknowledged_at is None:
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by = actor if getattr(actor, "pk", None) else None
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return alert
