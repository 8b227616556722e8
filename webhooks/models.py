"""Webhook endpoints a user registers, the deliveries of their events and every attempt."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from marqetfi.core.models import Event, TimeStampedModel


class WebhookEndpoint(TimeStampedModel):
    """Where a user's events are POSTed, signed with the endpoint's secret (Standard Webhooks)."""

    class DisabledReason(models.TextChoices):
        NONE = "", "Enabled"
        USER = "user", "Disabled by its owner"
        GONE = "gone", "The receiver answered 410 Gone"
        FAILING = "failing", "Every delivery failed for too long"
        OPERATOR = "operator", "Disabled by an operator"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=255, blank=True, default="")
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every event type.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(
        max_length=16, choices=DisabledReason.choices, blank=True, default=DisabledReason.NONE
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    ordered = models.BooleanField(
        default=True,
        help_text="Deliver in event order: a later event waits while an earlier one is retried.",
    )
    secret_encrypted = models.TextField(help_text="whsec_ secret, Fernet-encrypted.")
    previous_secret_encrypted = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last success."
    )
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [models.Index(fields=("user", "-created_at"))]

    def __str__(self) -> str:
        return f"{self.url} ({self.user_id})"

    def accepts(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class WebhookDelivery(TimeStampedModel):
    """One event for one endpoint: its exact signed body, its state and when it goes out next."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event_type = models.CharField(max_length=64)
    event_seq = models.PositiveBigIntegerField()
    webhook_id = models.CharField(max_length=64, help_text="Same across retries and redeliveries.")
    body = models.TextField(help_text="The exact bytes signed and sent.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts of the current round.")
    round_trigger = models.CharField(
        max_length=16,
        default="automatic",
        help_text="What started the current round; its retries are automatic.",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=("endpoint", "event"), name="webhook_delivery_once_per_endpoint")
        ]
        indexes = [
            models.Index(fields=("status", "next_attempt_at")),
            models.Index(fields=("endpoint", "status", "event_seq")),
            models.Index(fields=("user", "-created_at")),
            # The dashboard's deliveries of a day (today's live, a closed day's rollup).
            models.Index(fields=("created_at",), name="webhook_delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_seq} -> {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery, as the receiver answered it (or did not)."""

    class Trigger(models.TextChoices):
        AUTOMATIC = "automatic", "First attempt or automatic retry"
        REDELIVER = "redeliver", "Redelivery asked for"
        RECOVER = "recover", "Recovery of failed deliveries"

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.AUTOMATIC)
    started_at = models.DateTimeField()
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, default="", help_text="Truncated.")
    error = models.TextField(blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ("delivery", "number")
        constraints = [
            models.UniqueConstraint(fields=("delivery", "number"), name="webhook_attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error[:40]}"


class WebhookRecovery(TimeStampedModel):
    """A request to resend every failed delivery of an endpoint since a time (runs in a task)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="recoveries")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_recoveries"
    )
    since = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    deliveries_requeued = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
