"""Operators' screens for providers: versions with secrets masked, activate / roll back,
switches, routing rules. Every write goes through the services (audit + propagation)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from marqetfi.core.admin_audit import AuditedModelAdmin
from providers.breaker import breaker_state
from providers.health import provider_stats
from providers.models import LocalWalletKey, Provider, ProviderConfig, RoutingRule
from providers.services import configs as config_services
from providers.services import routing as routing_services


class ProviderConfigInline(admin.TabularInline):
    model = ProviderConfig
    extra = 0
    can_delete = False
    fields = ("version", "is_active", "settings", "secret_names", "comment", "created_by", "created_at")
    readonly_fields = fields
    ordering = ("-version",)
    show_change_link = True

    @admin.display(description="secrets")
    def secret_names(self, obj: ProviderConfig) -> str:
        return ", ".join(config_services.provider_config_public(obj)["secrets"]) or "-"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Provider)
class ProviderAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "enabled", "active_version", "breaker", "updated_at")
    list_filter = ("kind", "enabled")
    readonly_fields = ("name", "kind", "enabled", "created_at", "updated_at", "health")
    fields = readonly_fields
    inlines = (ProviderConfigInline,)
    actions = ("enable", "disable")

    def has_manage_provider_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("providers.manage_provider"))

    @admin.display(description="active version")
    def active_version(self, obj: Provider) -> int | None:
        return obj.configs.filter(is_active=True).values_list("version", flat=True).first()

    @admin.display(description="circuit")
    def breaker(self, obj: Provider) -> str:
        return breaker_state(obj.name)

    @admin.display(description="health (last 15 min)")
    def health(self, obj: Provider) -> str:
        return format_html_join("", "<div>{}: {}</div>", sorted(provider_stats(obj.name).items()))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Switch the selected providers on", permissions=["manage_provider"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            config_services.provider_set_enabled(name=provider.name, enabled=True, actor=request.user)
        self.message_user(request, "Switched on.", messages.SUCCESS)

    @admin.action(description="Switch the selected providers off", permissions=["manage_provider"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            config_services.provider_set_enabled(name=provider.name, enabled=False, actor=request.user)
        self.message_user(request, "Switched off.", messages.SUCCESS)


@admin.register(ProviderConfig)
class ProviderConfigAdmin(AuditedModelAdmin):
    """Versions are immutable: read-only here; new versions come from the admin API."""

    list_display = ("provider", "version", "is_active", "comment", "created_by", "created_at")
    list_filter = ("provider", "is_active")
    fields = (
        "provider",
        "version",
        "is_active",
        "settings",
        "secret_names",
        "comment",
        "created_by",
        "created_at",
        "activated_at",
    )
    readonly_fields = fields
    actions = ("activate", "rollback_to")

    def has_change_config_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("providers.change_config"))

    @admin.display(description="secrets (write-only)")
    def secret_names(self, obj: ProviderConfig) -> str:
        return (
            ", ".join(f"{k}: ********" for k in config_services.provider_config_public(obj)["secrets"]) or "-"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _single(self, request: HttpRequest, queryset: QuerySet[ProviderConfig]) -> ProviderConfig | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return None
        return queryset.select_related("provider").get()

    @admin.action(description="Activate this version", permissions=["change_config"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ProviderConfig]) -> None:
        if config := self._single(request, queryset):
            config_services.provider_config_activate(
                name=config.provider.name, version=config.version, actor=request.user
            )
            self.message_user(
                request, f"{config.provider.name} v{config.version} is active.", messages.SUCCESS
            )

    @admin.action(description="Roll back to this version (as a new version)", permissions=["change_config"])
    def rollback_to(self, request: HttpRequest, queryset: QuerySet[ProviderConfig]) -> None:
        if config := self._single(request, queryset):
            new = config_services.provider_config_rollback(
                name=config.provider.name, version=config.version, actor=request.user
            )
            self.message_user(
                request,
                f"{config.provider.name} v{new.version} restores v{config.version}.",
                messages.SUCCESS,
            )


class RoutingRuleForm(forms.ModelForm):
    class Meta:
        model = RoutingRule
        fields = ("match", "value", "venues", "enabled")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            routing_services.routing_rule_validate(
                data.get("match", ""), data.get("value", ""), data.get("venues")
            )
        except routing_services.InvalidRoutingRule as exc:
            raise forms.ValidationError(dict(exc.details)) from exc
        return data


@admin.register(RoutingRule)
class RoutingRuleAdmin(AuditedModelAdmin):
    form = RoutingRuleForm
    list_display = ("match", "value", "venues", "enabled", "updated_by", "updated_at")
    list_filter = ("match", "enabled")
    search_fields = ("value",)
    fields = ("match", "value", "venues", "enabled")

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:
        data = {"match": obj.match, "value": obj.value, "venues": obj.venues, "enabled": obj.enabled}
        if change:
            routing_services.routing_rule_update(rule_id=obj.pk, actor=request.user, **data)
        else:
            saved = routing_services.routing_rule_create(actor=request.user, **data)
            obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: RoutingRule) -> None:
        routing_services.routing_rule_delete(rule_id=obj.pk, actor=request.user)


@admin.register(LocalWalletKey)
class LocalWalletKeyAdmin(AuditedModelAdmin):
    """Addresses of the local signer; the encrypted key is never shown, not even as ciphertext."""

    list_display = ("address", "created_at")
    search_fields = ("address",)
    fields = ("id", "address", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LocalWalletKey | None = None) -> bool:
        return False
