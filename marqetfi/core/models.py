from __future__ import annotations

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone


class TimeStampedModel(models.Model):
    """Base for every table of ours: UUID primary key, creation and update times."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class EventStream(models.Model):
    """One row per user holding the last sequence number handed out.

    Incrementing it takes the row lock until the publishing transaction ends, which is
    what makes the per-user sequence gapless: a rolled-back publish rolls back its number.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    last_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        db_table = "core_event_stream"

    def __str__(self) -> str:
        return f"{self.user_id} at #{self.last_seq}"


class Event(models.Model):
    """A state change a user cares about (the outbox): WebSocket, webhooks and /events read it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=64)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_dispatch_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("user", "seq")
        constraints = [models.UniqueConstraint(fields=("user", "seq"), name="event_user_seq_unique")]
        indexes = [
            models.Index(
                fields=("created_at",),
                name="event_undispatched_idx",
                condition=Q(dispatched_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq} for {self.user_id}"

    @property
    def public_id(self) -> str:
        """The id receivers see (``evt_...``), stable across redeliveries."""
        return f"evt_{self.id.hex}"


class AuditEntry(models.Model):
    """Who changed what and when, for operator actions (configs, settings, routing, users).

    ``changes`` never holds secret values: secret fields appear as ``"changed"`` only.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=128)
    changes = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"


class AppSetting(models.Model):
    """An operator's override of a runtime setting defined in an app's ``app_settings.py``."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField()
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Created by the providers app, whose table it keeps (the state moved, not the data).
        db_table = "providers_appsetting"

    def __str__(self) -> str:
        return self.key


class OperatorAlert(models.Model):
    """Something an operator must look at (a swap that gave up, a drift, a reorg too deep).

    Raised by the apps through ``marqetfi.core.alerts.operator_alert_raise``; one open alert
    per (source, code, reference), counted again when raised again; closed by acknowledging it.
    """

    class Severity(models.TextChoices):
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    source = models.CharField(max_length=32, help_text="The app that raised it: deposits, trading, ...")
    code = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    reference = models.CharField(max_length=200, blank=True, default="", help_text='"deposit:<uuid>"')
    message = models.TextField()
    details = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    last_raised_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-last_raised_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("source", "code", "reference"),
                condition=models.Q(acknowledged_at__isnull=True),
                name="operator_alert_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.source}.{self.code} {self.reference}"
