"""The shapes of the webhooks API (API.md): what comes in, what goes out. No secret is ever an
output field here but ``secret`` of create and rotate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from webhooks.event_types import EVENT_TYPES
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRecovery

EVENT_TYPES_HELP = "Empty: every event type. Known types: " + ", ".join(EVENT_TYPES) + "."


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "disabled_reason",
            "ordered",
            "created_at",
            "updated_at",
        )
        read_only_fields: tuple[str, ...] = fields

    event_types = serializers.ListField(child=serializers.CharField(), help_text=EVENT_TYPES_HELP)
    disabled_reason = serializers.ChoiceField(
        choices=WebhookEndpoint.DisabledReason.choices,
        help_text='Why it is disabled: "user", "gone" (the receiver answered 410), "failing", '
        '"operator"; empty while enabled.',
    )


class EndpointCreatedSerializer(EndpointSerializer):
    class Meta(EndpointSerializer.Meta):
        fields = (*EndpointSerializer.Meta.fields, "secret")
        read_only_fields: tuple[str, ...] = fields

    secret = serializers.CharField(help_text="whsec_... Shown only in this response: keep it.")


class EndpointInputSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2048)
    description = serializers.CharField(max_length=255, allow_blank=True, required=False, default="")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        required=False,
        default=list,
        max_length=len(EVENT_TYPES),
        help_text=EVENT_TYPES_HELP,
    )
    enabled = serializers.BooleanField(required=False, default=True)
    ordered = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Deliver in event order: a later event waits while an earlier one is retried.",
    )


class EndpointUpdateSerializer(EndpointInputSerializer):
    """The same fields, each optional; what is not sent stays as it is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["partial"] = True
        super().__init__(*args, **kwargs)


class SecretRotatedSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new whsec_... secret, shown only here.")
    previous_secret_expires_at = serializers.DateTimeField(
        help_text="Until then deliveries are signed with the previous secret too."
    )


class DeliveryFilterSerializer(serializers.Serializer):
    endpoint = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.values, required=False)
    event_type = serializers.ChoiceField(choices=EVENT_TYPES, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601; inclusive.")
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601; exclusive.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and after > before:
            raise serializers.ValidationError({"created_before": ["Must not be before created_after."]})
        return attrs


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields: tuple[str, ...] = (
            "id",
            "endpoint",
            "webhook_id",
            "event_id",
            "event_type",
            "seq",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
        )
        read_only_fields: tuple[str, ...] = fields

    endpoint = serializers.UUIDField(source="endpoint_id", help_text="The endpoint's id.")
    event_id = serializers.UUIDField()
    seq = serializers.IntegerField(source="event_seq", help_text="The user's event sequence number.")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = (
            "number",
            "trigger",
            "started_at",
            "latency_ms",
            "status_code",
            "response_body",
            "error",
            "succeeded",
        )
        read_only_fields: tuple[str, ...] = fields


class DeliveryDetailSerializer(DeliverySerializer):
    class Meta(DeliverySerializer.Meta):
        fields = (*DeliverySerializer.Meta.fields, "attempt_log")
        read_only_fields: tuple[str, ...] = fields

    attempt_log = AttemptSerializer(many=True, help_text="Every attempt, oldest first.")


class RecoverInputSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="ISO 8601: failed deliveries created since then are resent.")

    def validate_since(self, value: datetime) -> datetime:
        if value > timezone.now():
            raise serializers.ValidationError("Must not be in the future.")
        return value


class RecoverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookRecovery
        fields = ("id", "endpoint", "since", "status", "deliveries_requeued", "created_at", "finished_at")
        read_only_fields: tuple[str, ...] = fields

    endpoint = serializers.UUIDField(source="endpoint_id")
