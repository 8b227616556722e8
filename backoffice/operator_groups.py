"""Operator groups: what each kind of operator may see and do, in the admin and the staff API.

The matrix below is the source of truth (the README shows it as a table). The data migration
``backoffice/0001_operator_groups`` creates the groups, and every ``migrate`` afterwards adds
what the matrix gained (``post_migrate``), so a group never lacks a permission listed here.
Nothing is removed automatically: taking a permission away is a deliberate data migration.

Model permissions are Django's own (``view_`` / ``add_`` / ``change_`` / ``delete_``). The
operator actions have permissions of their own, created here rather than in each model's
``Meta.permissions`` so that one migration owns them all; admin actions and staff views check
them by name (``ledger.adjust_balance``...). Superusers hold every permission anyway.
"""

from __future__ import annotations

from typing import Any

SUPPORT = "Support (read-only)"
TRADING_OPERATIONS = "Trading operations"
TREASURY = "Treasury"
CONFIGURATION_ADMIN = "Configuration admin"

# (app_label, model, codename, name): the operator actions' own permissions.
ACTION_PERMISSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("accounts", "user", "disable_user", "Can disable or enable a user's trading or sign-in"),
    ("core", "operatoralert", "acknowledge_alert", "Can acknowledge operator alerts"),
    ("trading", "order", "cancel_order", "Can cancel a user's order"),
    ("trading", "position", "close_position", "Can close a user's position"),
    ("trading", "reconciliationdrift", "resolve_drift", "Can resolve a reconciliation drift"),
    ("trading", "venuereconciliation", "run_reconciliation", "Can run a venue reconciliation now"),
    ("pricing", "tradingpair", "set_paper_price", "Can set a paper venue price"),
    ("ledger", "ledgertransaction", "adjust_balance", "Can credit or debit a user's balance"),
    ("deposits", "deposit", "retry_swap", "Can retry a deposit's failed swap"),
    ("deposits", "deposit", "resolve_deposit", "Can resolve a deposit manually"),
    ("webhooks", "webhookdelivery", "redeliver_delivery", "Can redeliver webhook deliveries"),
    ("webhooks", "webhookendpoint", "operate_endpoint", "Can disable, enable or recover webhook endpoints"),
    ("providers", "providerconfig", "change_config", "Can create, activate or roll back provider configs"),
    ("providers", "provider", "manage_provider", "Can switch providers on or off and probe them"),
    ("providers", "provider", "reset_breaker", "Can reset a provider's circuit breaker"),
)

# Every operator sees every table of these apps (Support does nothing more).
VIEWED_APPS = (
    "core",
    "accounts",
    "providers",
    "pricing",
    "trading",
    "ledger",
    "deposits",
    "webhooks",
    "django_celery_beat",
)
# ... except these, which only the groups listing them see.
NOT_VIEWED = ("providers.view_localwalletkey",)

PERIODIC_TASK_MODELS = (
    "periodictask",
    "intervalschedule",
    "crontabschedule",
    "solarschedule",
    "clockedschedule",
)

GROUPS: dict[str, tuple[str, ...]] = {
    SUPPORT: (),
    TRADING_OPERATIONS: (
        "trading.cancel_order",
        "trading.close_position",
        "trading.resolve_drift",
        "trading.run_reconciliation",
        "trading.add_risklimit",
        "trading.change_risklimit",
        "trading.delete_risklimit",
        "pricing.set_paper_price",
        "accounts.disable_user",
        "core.acknowledge_alert",
    ),
    TREASURY: (
        "ledger.adjust_balance",
        "deposits.retry_swap",
        "deposits.resolve_deposit",
        "webhooks.redeliver_delivery",
        "webhooks.operate_endpoint",
        "core.acknowledge_alert",
    ),
    CONFIGURATION_ADMIN: (
        "providers.change_config",
        "providers.manage_provider",
        "providers.reset_breaker",
        "providers.view_localwalletkey",
        "providers.add_routingrule",
        "providers.change_routingrule",
        "providers.delete_routingrule",
        "core.add_appsetting",
        "core.change_appsetting",
        "core.delete_appsetting",
        "core.acknowledge_alert",
        *(
            f"django_celery_beat.{verb}_{model}"
            for model in PERIODIC_TASK_MODELS
            for verb in ("add", "change", "delete")
        ),
    ),
}


def operator_groups_sync(*, apps: Any) -> None:
    """Create the action permissions and the groups, and add to each group what the matrix
    lists; ``apps`` is a migration's app registry (or the live one), so this runs in both.

    The model permissions must exist already (``create_permissions``); one the matrix names
    that does not is an error, not a silent gap.
    """
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    group_model = apps.get_model("auth", "Group")
    for app_label, model, codename, name in ACTION_PERMISSIONS:
        content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model)
        permission_model.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    viewing = [
        permission
        for permission in permission_model.objects.filter(
            content_type__app_label__in=VIEWED_APPS, codename__startswith="view_"
        ).select_related("content_type")
        if f"{permission.content_type.app_label}.{permission.codename}" not in NOT_VIEWED
    ]
    for group_name, granted in GROUPS.items():
        group, _ = group_model.objects.get_or_create(name=group_name)
        wanted = [_permission(permission_model, name) for name in granted]
        group.permissions.add(*viewing, *wanted)


def _permission(permission_model: Any, name: str) -> Any:
    app_label, codename = name.split(".", 1)
    try:
        return permission_model.objects.get(content_type__app_label=app_label, codename=codename)
    except permission_model.DoesNotExist as exc:
        raise LookupError(f"operator groups: no permission {name}") from exc
