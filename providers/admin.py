"""Operators' screens for providers: versions with secrets masked, activate / roll back,
switches, routing rules. Every write goes through the services (audit + propagation)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from marqetfi.core.admin_audit import AuditedModelAdmin
from marqetfi.core.audit import audit_record
from marqetfi.core.errors import ApplicationError
from providers.breaker import breaker_reset, breaker_state
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


class ProviderConfigVersionForm(forms.Form):
    """A new configuration version: the options as text (blank: not set, the default applies),
    secrets write-only (blank: keep the active version's; "remove" drops it), a comment."""

    comment = forms.CharField(max_length=200, required=False)
    activate = forms.BooleanField(required=False, initial=True, help_text="Make it the active version now.")

    def __init__(
        self, *args: Any, options: list[str], secrets: list[str], current: dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.option_names, self.secret_names = options, secrets
        for name in options:
            value = current.get(name)
            self.fields[f"option:{name}"] = forms.CharField(
                label=name, required=False, initial="" if value is None else str(value)
            )
        for name in secrets:
            self.fields[f"secret:{name}"] = forms.CharField(
                label=f"{name} (secret)",
                required=False,
                widget=forms.PasswordInput(render_value=False),
                help_text="Write-only: blank keeps the active version's value.",
            )
            self.fields[f"remove:{name}"] = forms.BooleanField(label=f"remove {name}", required=False)

    def values(self) -> dict[str, str]:
        return {
            name: value
            for name in self.option_names
            if (value := self.cleaned_data[f"option:{name}"].strip())
        }

    def secrets(self) -> dict[str, str | None]:
        changed: dict[str, str | None] = {}
        for name in self.secret_names:
            if self.cleaned_data[f"remove:{name}"]:
                changed[name] = None
            elif value := self.cleaned_data[f"secret:{name}"]:
                changed[name] = value
        return changed


@admin.register(Provider)
class ProviderAdmin(AuditedModelAdmin):
    list_display = ("name", "kind", "enabled", "active_version", "breaker", "updated_at")
    list_filter = ("kind", "enabled")
    readonly_fields = ("name", "kind", "enabled", "configure", "created_at", "updated_at", "health")
    fields = readonly_fields
    inlines = (ProviderConfigInline,)
    actions = ("enable", "disable", "reset_breaker")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/new-version/",
                self.admin_site.admin_view(self.new_version_view),
                name="providers_provider_new_version",
            ),
            *super().get_urls(),
        ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[Any, ...]:
        """The new-version link only for those who may write one."""
        fields = tuple(super().get_fields(request, obj))
        if request.user.has_perm("providers.change_config"):
            return fields
        return tuple(field for field in fields if field != "configure")

    @admin.display(description="configuration")
    def configure(self, obj: Provider) -> str:
        """A link to the new-version form (which answers 403 without ``providers.change_config``)."""
        url = reverse("admin:providers_provider_new_version", args=[obj.pk])
        return format_html('<a class="button" href="{}">New configuration version</a>', url)

    def new_version_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Write a new version of the provider's configuration (``provider_config_create``:
        validated, audited with its secrets masked, propagated to every process)."""
        provider = self.get_object(request, object_id)
        if provider is None:
            raise Http404("No such provider.")
        if not request.user.has_perm("providers.change_config"):
            raise PermissionDenied
        active = provider.configs.filter(is_active=True).first()
        options, secrets = config_services.provider_config_fields(provider.name)
        form = ProviderConfigVersionForm(
            request.POST or None,
            options=options,
            secrets=secrets,
            current=dict(active.settings) if active else {},
        )
        if request.method == "POST" and form.is_valid():
            try:
                config = config_services.provider_config_create(
                    name=provider.name,
                    values=form.values(),
                    secrets=form.secrets(),
                    comment=form.cleaned_data["comment"],
                    actor=request.user,
                    activate=form.cleaned_data["activate"],
                )
            except ApplicationError as exc:
                for field, problems in exc.details.items():
                    target = f"option:{field}" if f"option:{field}" in form.fields else None
                    form.add_error(target, f"{field}: {problems}")
            else:
                self.message_user(request, f"{provider.name} v{config.version} written.", messages.SUCCESS)
                return redirect(reverse("admin:providers_provider_change", args=[provider.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"New configuration version of {provider.name}",
            "opts": self.model._meta,
            "original": provider,
            "form": form,
            "active": active,
        }
        return TemplateResponse(request, "admin/providers/provider_new_version.html", context)

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

    def has_reset_breaker_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("providers.reset_breaker"))

    @admin.action(
        description="Reset the circuit breaker (closed, failures forgotten)", permissions=["reset_breaker"]
    )
    def reset_breaker(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            before = breaker_state(provider.name)
            breaker_reset(provider.name)
            audit_record(
                actor=request.user,
                action="provider.breaker_reset",
                target_type="provider",
                target_id=provider.name,
                changes={"breaker": {"before": before, "after": "closed"}},
            )
        self.message_user(request, "Circuit breaker(s) reset.", messages.SUCCESS)

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
