"""The admin as the operators' console: its index groups the tables by what operators do, not
by the app that defines them, and hides the framework's own tables from everyone but
superusers.

``OperatorsAdminSite`` is the project's default admin site (``backoffice.apps.
OperatorsAdminConfig`` replaces ``django.contrib.admin`` in ``INSTALLED_APPS``), so every
``admin.register`` in the apps lands here unchanged. Only the index is regrouped: an app's own
page (``/admin/<app>/``) and every model page keep their URLs.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

# What operators do, in the order the index shows it: (section, its models as "app.Model").
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Users and identities",
        ("accounts.User", "accounts.AuthIdentity", "accounts.Wallet", "account.EmailAddress", "auth.Group"),
    ),
    (
        "Trading",
        (
            "trading.Order",
            "trading.Position",
            "trading.Fill",
            "trading.ProtectiveOrder",
            "trading.RiskLimit",
            "trading.ReconciliationDrift",
            "trading.VenueReconciliation",
            "pricing.TradingPair",
        ),
    ),
    ("Money and ledger", ("ledger.LedgerAccount", "ledger.LedgerTransaction")),
    ("Deposits and swaps", ("deposits.Deposit", "deposits.Swap", "deposits.ChainScanCursor")),
    ("Webhooks", ("webhooks.WebhookEndpoint", "webhooks.WebhookDelivery", "webhooks.WebhookRecovery")),
    (
        "Providers and routing",
        (
            "providers.Provider",
            "providers.ProviderConfig",
            "providers.RoutingRule",
            "providers.LocalWalletKey",
        ),
    ),
    (
        "Platform",
        (
            "core.OperatorAlert",
            "core.AuditEntry",
            "core.AppSetting",
            "core.Event",
            "django_celery_beat.PeriodicTask",
            "django_celery_beat.IntervalSchedule",
            "django_celery_beat.CrontabSchedule",
            "django_celery_beat.ClockedSchedule",
            "django_celery_beat.SolarSchedule",
        ),
    ),
)
# Tables of the framework no operator works in (sites, the JWT blacklist...): listed, under
# this heading, to superusers only.
FRAMEWORK_SECTION = "Framework (superusers only)"


def section_of(model_key: str) -> str | None:
    """The section a model (``"app_label.ModelName"``) is shown in; None: a framework table."""
    return next((name for name, models in SECTIONS if model_key in models), None)


class OperatorsAdminSite(admin.AdminSite):
    site_header = "MarqetFi operations"
    site_title = "MarqetFi operations"
    index_title = "Operations console"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        """The index's sections; an app's own page (``app_label``) stays as Django lists it."""
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list
        models: dict[str, dict[str, Any]] = {}
        for app in app_list:
            for model in app["models"]:
                models[f"{app['app_label']}.{model['object_name']}"] = model
        sections = []
        for index, (name, keys) in enumerate(SECTIONS):
            shown = [models.pop(key) for key in keys if key in models]
            if shown:
                sections.append(_section(name, f"section-{index}", shown))
        if models and request.user.is_superuser:
            leftovers = sorted(models.values(), key=lambda model: str(model["name"]))
            sections.append(_section(FRAMEWORK_SECTION, "framework", leftovers))
        return sections


def _section(name: str, label: str, models: list[dict[str, Any]]) -> dict[str, Any]:
    """A section in the shape Django's index template expects of an app."""
    return {
        "name": name,
        "app_label": label,
        "app_url": "",
        "has_module_perms": True,
        "models": models,
    }
