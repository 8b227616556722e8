"""Operators' screens for webhooks: endpoints with their health over the last 7 days, and the
delivery log with every attempt. Deliveries and attempts are read-only (the delivery engine
writes them); enabling and disabling endpoints goes through an audited service. Secrets are
never shown, not even encrypted."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from marqetfi.core.admin_audit import AuditedModelAdmin
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRecovery
from webhooks.selectors import endpoints_with_health
from webhooks.services.endpoints import endpoints_operator_set_enabled
from webhooks.services.operators import (
    OperatorOutcome,
    deliveries_operator_redeliver,
    endpoints_operator_recover,
)

SECRET_FIELDS = ("secret_encrypted", "previous_secret_encrypted")


def _report(model_admin: admin.ModelAdmin, request: HttpRequest, outcome: OperatorOutcome, done: str) -> None:
    if outcome.done:
        model_admin.message_user(request, f"{len(outcome.done)} {done}.", messages.SUCCESS)
    if outcome.skipped_disabled:
        model_admin.message_user(
            request,
            f"{len(outcome.skipped_disabled)} skipped: the endpoint is disabled; enable it first.",
            messages.WARNING,
        )


class ReadOnlyAdmin(AuditedModelAdmin):
    """Look, never edit: the delivery engine writes these rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedModelAdmin):
    list_display = (
        "url",
        "user_email",
        "enabled",
        "disabled_reason",
        "success_rate_7d",
        "avg_latency_7d",
        "failing_since",
        "last_success_at",
        "created_at",
    )
    list_filter = ("enabled", "disabled_reason")
    search_fields = ("url", "user__email")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    actions = ("disable_endpoints", "enable_endpoints", "recover_last_24h")
    exclude = SECRET_FIELDS
    readonly_fields = (
        "user",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "ordered",
        "previous_secret_expires_at",
        "failing_since",
        "last_success_at",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return endpoints_with_health(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # an endpoint is its owner's: created through the API, with its secret

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # the page is read-only; operators act through the audited actions

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # operators disable; deleting is the owner's

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("webhooks.operate_endpoint"))

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: WebhookEndpoint) -> str:
        return obj.user.email or str(obj.user_id)

    @admin.display(description="success rate (7 d)", ordering="recent_successes")
    def success_rate_7d(self, obj: Any) -> str:
        if not obj.recent_attempts:
            return "-"
        return f"{100 * obj.recent_successes / obj.recent_attempts:.1f}% of {obj.recent_attempts}"

    @admin.display(description="avg latency (7 d)", ordering="recent_avg_latency_ms")
    def avg_latency_7d(self, obj: Any) -> str:
        return "-" if obj.recent_avg_latency_ms is None else f"{obj.recent_avg_latency_ms:.0f} ms"

    @admin.action(description="Disable the selected endpoints (reason: operator)", permissions=["operate"])
    def disable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        changed = endpoints_operator_set_enabled(
            endpoint_ids=queryset.values_list("pk", flat=True), enabled=False, actor=request.user
        )
        self.message_user(request, f"{changed} endpoint(s) disabled.", messages.SUCCESS)

    @admin.action(description="Enable the selected endpoints", permissions=["operate"])
    def enable_endpoints(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        changed = endpoints_operator_set_enabled(
            endpoint_ids=queryset.values_list("pk", flat=True), enabled=True, actor=request.user
        )
        self.message_user(request, f"{changed} endpoint(s) enabled.", messages.SUCCESS)

    @admin.action(description="Recover failed deliveries of the last 24 h", permissions=["operate"])
    def recover_last_24h(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        outcome = endpoints_operator_recover(
            endpoint_ids=queryset.values_list("pk", flat=True), actor=request.user
        )
        _report(self, request, outcome, "recovery job(s) queued")


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "trigger",
        "started_at",
        "latency_ms",
        "status_code",
        "succeeded",
        "error",
        "response_body",
    )
    readonly_fields = fields
    ordering = ("number",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_email",
        "endpoint_url",
        "event_type",
        "event_seq",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type", "endpoint")
    search_fields = ("user__email", "endpoint__url", "webhook_id", "=id")
    list_select_related = ("user", "endpoint")
    date_hierarchy = "created_at"
    inlines = (AttemptInline,)
    actions = ("redeliver",)
    readonly_fields = (
        "endpoint",
        "user",
        "event",
        "event_type",
        "event_seq",
        "webhook_id",
        "status",
        "attempts",
        "round_trigger",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
        "updated_at",
        "body",
    )

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Viewing only; Django shows a read-only change page when view is allowed.
        return False

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: WebhookDelivery) -> str:
        return obj.user.email or str(obj.user_id)

    @admin.display(description="endpoint", ordering="endpoint__url")
    def endpoint_url(self, obj: WebhookDelivery) -> str:
        return obj.endpoint.url

    @admin.action(description="Redeliver the selected deliveries", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        outcome = deliveries_operator_redeliver(
            delivery_ids=queryset.values_list("pk", flat=True), actor=request.user
        )
        _report(self, request, outcome, "delivery(ies) queued again")

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        # The rows stay read-only on their pages; resending is what changing them means here.
        return bool(request.user.has_perm("webhooks.redeliver_delivery"))


@admin.register(WebhookRecovery)
class WebhookRecoveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "endpoint", "since", "status", "deliveries_requeued", "finished_at")
    list_filter = ("status",)
    search_fields = ("user__email", "endpoint__url", "=id")
    list_select_related = ("user", "endpoint")
    readonly_fields = (
        "endpoint",
        "user",
        "since",
        "status",
        "deliveries_requeued",
        "finished_at",
        "created_at",
    )
