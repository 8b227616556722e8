from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from marqetfi.core.admin_audit import AuditedModelAdmin
from marqetfi.core.alerts import operator_alert_acknowledge
from marqetfi.core.app_settings.registry import app_setting_definition
from marqetfi.core.app_settings.services import app_setting_reset, app_setting_set
from marqetfi.core.errors import InvalidSetting, UnknownSetting
from marqetfi.core.models import AppSetting, AuditEntry, Event, OperatorAlert


@admin.register(Event)
class EventAdmin(AuditedModelAdmin):
    """Read-only view of the outbox: what was published, and whether it went out."""

    list_display = ("created_at", "user", "seq", "type", "dispatched_at", "dispatch_attempts")
    list_filter = ("type", ("dispatched_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "type")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_select_related = ("user",)
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False


class AppSettingForm(forms.ModelForm):
    class Meta:
        model = AppSetting
        fields = ("key", "value")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            app_setting_definition(data.get("key", "")).clean(data.get("value"))
        except (InvalidSetting, UnknownSetting) as exc:
            raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(AppSetting)
class AppSettingAdmin(AuditedModelAdmin):
    """Overrides of the runtime settings; saving goes through the service (validated, audited,
    applied by every process within about a second)."""

    form = AppSettingForm
    list_display = ("key", "value", "updated_by", "updated_at")
    readonly_fields = ("updated_by", "updated_at")

    def save_model(self, request: HttpRequest, obj: AppSetting, form: Any, change: bool) -> None:
        app_setting_set(key=obj.key, value=obj.value, actor=request.user)

    def delete_model(self, request: HttpRequest, obj: AppSetting) -> None:
        app_setting_reset(key=obj.key, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AppSetting]) -> None:
        for row in queryset:
            app_setting_reset(key=row.key, actor=request.user)


@admin.register(OperatorAlert)
class OperatorAlertAdmin(AuditedModelAdmin):
    """What needs an operator: open alerts first; acknowledging closes one."""

    list_display = (
        "last_raised_at",
        "severity",
        "source",
        "code",
        "reference",
        "occurrences",
        "acknowledged_at",
    )
    list_filter = ("severity", "source", "code", ("acknowledged_at", admin.EmptyFieldListFilter))
    search_fields = ("reference", "message", "code")
    ordering = ("acknowledged_at", "-last_raised_at")
    readonly_fields = [f.name for f in OperatorAlert._meta.fields]
    actions = ("acknowledge",)

    def has_acknowledge_alert_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("core.acknowledge_alert"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge the selected alerts", permissions=["acknowledge_alert"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[OperatorAlert]) -> None:
        for alert in queryset.filter(acknowledged_at__isnull=True):
            operator_alert_acknowledge(alert=alert, actor=request.user)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, read-only: who changed what, before and after (secrets only as "changed")."""

    list_display = ("created_at", "actor", "action", "target_type", "target_id", "request_id")
    list_filter = ("action", "target_type")
    search_fields = ("target_id", "actor__email", "action", "request_id")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False
