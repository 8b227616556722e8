"""Operator groups: each group can do exactly what it should in the staff API and the admin,
and every admin change lands in the audit log (secrets only as "changed")."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from backoffice.operator_groups import (
    CONFIGURATION_ADMIN,
    GROUPS,
    SUPPORT,
    TRADING_OPERATIONS,
    TREASURY,
)
from conftest import bearer_client
from ledger.checks import ledger_check
from ledger.models import LedgerTransaction
from ledger.selectors import user_balances
from marqetfi.core.models import AuditEntry, OperatorAlert
from providers.models import Provider
from trading.models import ReconciliationDrift

pytestmark = pytest.mark.django_db

ALL = (SUPPORT, TRADING_OPERATIONS, TREASURY, CONFIGURATION_ADMIN)
NOBODY = "nobody"  # staff in no group


@pytest.fixture(autouse=True)
def _ledger_balanced_after_each_test() -> Any:
    yield
    assert ledger_check() == []


def operator(group: str) -> User:
    user = User.objects.create_user(
        email=f"ops-{uuid.uuid4().hex[:8]}@ops.local", password="x", is_staff=True
    )
    if group != NOBODY:
        user.groups.add(Group.objects.get(name=group))
    return user


def codes(group: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=group).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


# -- the migration --------------------------------------------------------------------------


def test_the_migration_creates_the_four_groups_with_their_permissions() -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= set(ALL)
    support = codes(SUPPORT)
    assert support and all(code.split(".")[1].startswith("view_") for code in support)
    assert {"ledger.view_ledgertransaction", "core.view_auditentry", "trading.view_order"} <= support
    assert "providers.view_localwalletkey" not in support
    for group in ALL:
        assert support - {"providers.view_localwalletkey"} <= codes(group)  # everyone sees
        assert set(GROUPS[group]) <= codes(group)
    assert {
        "trading.resolve_drift",
        "trading.cancel_order",
        "trading.close_position",
        "trading.change_risklimit",
        "pricing.set_paper_price",
    } <= codes(TRADING_OPERATIONS)
    assert {"ledger.adjust_balance", "deposits.retry_swap", "webhooks.redeliver_delivery"} <= codes(TREASURY)
    assert {
        "providers.change_config",
        "providers.manage_provider",
        "providers.reset_breaker",
        "providers.change_routingrule",
        "core.change_appsetting",
        "django_celery_beat.change_periodictask",
    } <= codes(CONFIGURATION_ADMIN)
    # Nobody but the Configuration admin touches configs; nobody but Treasury moves money.
    for group in (SUPPORT, TRADING_OPERATIONS, TREASURY):
        assert not {"providers.change_config", "core.change_appsetting"} & codes(group)
    for group in (SUPPORT, TRADING_OPERATIONS, CONFIGURATION_ADMIN):
        assert "ledger.adjust_balance" not in codes(group)
    # Granting access stays with superusers.
    for group in ALL:
        assert not {"accounts.change_user", "auth.change_group", "auth.change_permission"} & codes(group)
    assert Permission.objects.filter(codename="adjust_balance", content_type__app_label="ledger").exists()


# -- the staff API -----------------------------------------------------------------------------

ANY_ID = "00000000-0000-0000-0000-000000000001"
READS = [
    "/api/v1/admin/providers",
    "/api/v1/admin/routing-rules",
    "/api/v1/admin/settings",
    "/api/v1/admin/risk-limits",
    "/api/v1/admin/positions",
    "/api/v1/admin/reconciliation/drifts",
    "/api/v1/admin/deposits",
    "/api/v1/admin/users",
    "/api/v1/admin/analytics",
    "/api/v1/admin/audit",
]
# (method, path, body, the group that may): targets that do not exist, so an allowed call
# answers 400 / 404 and a refused one 403, and nothing changes either way.
WRITES = [
    ("patch", "/api/v1/admin/providers/nope", {"enabled": False}, CONFIGURATION_ADMIN),
    ("post", "/api/v1/admin/providers/nope/configs", {"settings": {}}, CONFIGURATION_ADMIN),
    ("post", "/api/v1/admin/providers/nope/configs/1/activate", None, CONFIGURATION_ADMIN),
    ("post", "/api/v1/admin/providers/nope/rollback", {"version": 1}, CONFIGURATION_ADMIN),
    ("post", "/api/v1/admin/providers/nope/probe", None, CONFIGURATION_ADMIN),
    ("post", "/api/v1/admin/routing-rules", {}, CONFIGURATION_ADMIN),
    ("patch", f"/api/v1/admin/routing-rules/{ANY_ID}", {}, CONFIGURATION_ADMIN),
    ("delete", f"/api/v1/admin/routing-rules/{ANY_ID}", None, CONFIGURATION_ADMIN),
    ("put", "/api/v1/admin/settings/nope", {"value": 1}, CONFIGURATION_ADMIN),
    ("delete", "/api/v1/admin/settings/nope", None, CONFIGURATION_ADMIN),
    ("post", "/api/v1/admin/risk-limits", {}, TRADING_OPERATIONS),
    ("patch", f"/api/v1/admin/risk-limits/{ANY_ID}", {}, TRADING_OPERATIONS),
    ("delete", f"/api/v1/admin/risk-limits/{ANY_ID}", None, TRADING_OPERATIONS),
    ("post", f"/api/v1/admin/reconciliation/drifts/{ANY_ID}/resolve", {}, TRADING_OPERATIONS),
    ("post", "/api/v1/admin/paper/prices", {}, TRADING_OPERATIONS),
    ("patch", f"/api/v1/admin/users/{ANY_ID}", {"trading_enabled": False}, TRADING_OPERATIONS),
    ("post", f"/api/v1/admin/users/{ANY_ID}/adjustments", {}, TREASURY),
    ("post", f"/api/v1/admin/deposits/{ANY_ID}/retry", {}, TREASURY),
    ("post", f"/api/v1/admin/deposits/{ANY_ID}/resolve", {}, TREASURY),
]


def refused(response: Any) -> bool:
    return response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize("group", [*ALL, NOBODY])
def test_every_group_reads_every_staff_list_and_staff_in_no_group_none(group: str) -> None:
    client = bearer_client(operator(group))
    for path in READS:
        response = client.get(path)
        if group == NOBODY:
            assert refused(response), path
        else:
            assert response.status_code == 200, (path, response.content)


@pytest.mark.parametrize("group", [*ALL, NOBODY])
def test_each_group_may_call_exactly_its_own_staff_writes(group: str) -> None:
    client = bearer_client(operator(group))
    for method, path, body, allowed_to in WRITES:
        response = getattr(client, method)(path, body, format="json")
        if group == allowed_to:
            assert response.status_code in (400, 404), (path, response.status_code, response.content)
        else:
            assert refused(response), (path, response.status_code)
    assert not AuditEntry.objects.exists()


def test_making_someone_staff_through_the_api_is_for_superusers_only(user: Any) -> None:
    client = bearer_client(operator(TRADING_OPERATIONS))
    assert refused(client.patch(f"/api/v1/admin/users/{user.pk}", {"is_staff": True}, format="json"))
    user.refresh_from_db()
    assert not user.is_staff
    boss = User.objects.create_superuser(email="boss@ops.local", password="x")
    ok = bearer_client(boss).patch(f"/api/v1/admin/users/{user.pk}", {"is_staff": True}, format="json")
    assert ok.status_code == 200 and ok.json()["is_staff"] is True


def test_treasury_adjusts_a_balance_through_the_api_and_trading_operations_may_not(user: Any) -> None:
    path = f"/api/v1/admin/users/{user.pk}/adjustments"
    body = {"amount": "25", "reason": "goodwill"}
    assert refused(bearer_client(operator(TRADING_OPERATIONS)).post(path, body, format="json"))
    treasurer = operator(TREASURY)
    created = bearer_client(treasurer).post(path, body, format="json")
    assert created.status_code == 201, created.content
    assert user_balances(user=user).available == Decimal("25")
    assert AuditEntry.objects.filter(actor=treasurer).count() == 1


def test_trading_operations_resolve_a_drift_and_disable_trading_through_the_api(user: Any) -> None:
    drift = new_drift()
    ops = bearer_client(operator(TRADING_OPERATIONS))
    resolved = ops.post(
        f"/api/v1/admin/reconciliation/drifts/{drift.pk}/resolve", {"reason": "checked"}, format="json"
    )
    assert resolved.status_code == 200, resolved.content
    patched = ops.patch(f"/api/v1/admin/users/{user.pk}", {"trading_enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["trading_enabled"] is False


def test_configuration_admin_changes_a_runtime_setting_through_the_api() -> None:
    admin_user = operator(CONFIGURATION_ADMIN)
    path = "/api/v1/admin/settings/price_cache_ttl_seconds"
    assert refused(bearer_client(operator(SUPPORT)).put(path, {"value": 7}, format="json"))
    response = bearer_client(admin_user).put(path, {"value": 7}, format="json")
    assert response.status_code == 200, response.content
    assert AuditEntry.objects.filter(actor=admin_user, action="app_setting.set").count() == 1


# -- admin actions -----------------------------------------------------------------------------


def new_drift() -> ReconciliationDrift:
    now = timezone.now()
    return ReconciliationDrift.objects.create(
        venue="paper",
        account_ref="acct-1",
        kind="size_mismatch",
        symbol="BTCUSD",
        detected_at=now,
        last_seen_at=now,
    )


def new_alert() -> OperatorAlert:
    return OperatorAlert.objects.create(
        source="deposits", code="swap_gave_up", message="look", reference="d:1"
    )


def run_action(client: Any, changelist: str, action: str, rows: list[Any], **form: Any) -> Any:
    return client.post(
        reverse(changelist), {"action": action, "_selected_action": [str(r.pk) for r in rows], **form}
    )


def admin_client(client: Any, group: str) -> Any:
    client.force_login(operator(group))
    return client


def offered(client: Any, changelist: str) -> str:
    page = client.get(reverse(changelist))
    assert page.status_code == 200
    return page.content.decode()


ACTIONS = [
    # (changelist, action, the group that may)
    ("admin:trading_reconciliationdrift_changelist", "mark_resolved", TRADING_OPERATIONS),
    ("admin:accounts_user_changelist", "disable_trading", TRADING_OPERATIONS),
    ("admin:accounts_user_changelist", "adjust_balance", TREASURY),
    ("admin:deposits_deposit_changelist", "retry_failed_swap", TREASURY),
    ("admin:deposits_deposit_changelist", "resolve_manually", TREASURY),
    ("admin:webhooks_webhookdelivery_changelist", "redeliver", TREASURY),
    ("admin:webhooks_webhookendpoint_changelist", "disable_endpoints", TREASURY),
    ("admin:providers_provider_changelist", "disable", CONFIGURATION_ADMIN),
    ("admin:providers_providerconfig_changelist", "activate", CONFIGURATION_ADMIN),
    ("admin:providers_providerconfig_changelist", "rollback_to", CONFIGURATION_ADMIN),
]


@pytest.mark.parametrize("group", ALL)
def test_each_group_is_offered_exactly_its_admin_actions(client: Any, group: str, user: Any) -> None:
    """The action lists as each group's changelists show them (a page lists its actions once it
    has a row; each changelist here has one)."""
    new_drift()
    new_alert()
    Provider.objects.get_or_create(name="paper", defaults={"kind": "venue"})
    client = admin_client(client, group)
    for changelist, action, allowed_to in ACTIONS:
        model_admin = _model_admin(changelist)
        request = client.get(reverse(changelist)).wsgi_request
        assert (action in model_admin.get_actions(request)) is (group == allowed_to), (changelist, action)
    acknowledge = 'value="acknowledge"' in offered(client, "admin:core_operatoralert_changelist")
    assert acknowledge is (group != SUPPORT)


def _model_admin(changelist: str) -> Any:
    _, name = changelist.split(":")
    app_label, model_name, _ = name.split("_")
    return next(
        model_admin
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == app_label and model._meta.model_name == model_name
    )


def test_support_runs_no_action_and_changes_nothing(client: Any, user: Any) -> None:
    drift, alert = new_drift(), new_alert()
    support = admin_client(client, SUPPORT)
    run_action(support, "admin:trading_reconciliationdrift_changelist", "mark_resolved", [drift])
    run_action(support, "admin:core_operatoralert_changelist", "acknowledge", [alert])
    run_action(support, "admin:accounts_user_changelist", "disable_trading", [user])
    run_action(
        support, "admin:accounts_user_changelist", "adjust_balance", [user], apply="1", amount="5", reason="x"
    )
    for row in (drift, alert, user):
        row.refresh_from_db()
    assert drift.status == "open" and alert.acknowledged_at is None and user.trading_enabled
    assert not LedgerTransaction.objects.exists() and not AuditEntry.objects.exists()
    # Pages are readable, not writable.
    assert support.get(reverse("admin:accounts_user_change", args=[user.pk])).status_code == 200
    assert support.post(reverse("admin:accounts_user_change", args=[user.pk]), {}).status_code == 403
    assert support.get(reverse("admin:trading_risklimit_add")).status_code == 403
    assert support.get(reverse("admin:core_auditentry_changelist")).status_code == 200


def test_trading_operations_resolve_drifts_and_disable_trading_in_the_admin(client: Any, user: Any) -> None:
    drift = new_drift()
    ops = admin_client(client, TRADING_OPERATIONS)
    run_action(ops, "admin:trading_reconciliationdrift_changelist", "mark_resolved", [drift])
    run_action(ops, "admin:accounts_user_changelist", "disable_trading", [user])
    run_action(
        ops, "admin:accounts_user_changelist", "adjust_balance", [user], apply="1", amount="5", reason="x"
    )
    drift.refresh_from_db()
    user.refresh_from_db()
    assert drift.status == "resolved" and not user.trading_enabled
    assert not LedgerTransaction.objects.exists()
    # The services audit these; the admin adds no second row.
    assert sorted(AuditEntry.objects.values_list("action", flat=True)) == [
        "reconciliation_drift.resolve",
        "user.trading",
    ]


def test_treasury_adjusts_balances_in_the_admin_but_not_trading(client: Any, user: Any) -> None:
    treasury = admin_client(client, TREASURY)
    run_action(treasury, "admin:accounts_user_changelist", "disable_trading", [user])
    run_action(
        treasury,
        "admin:accounts_user_changelist",
        "adjust_balance",
        [user],
        apply="1",
        amount="5",
        reason="ok",
    )
    user.refresh_from_db()
    assert user.trading_enabled
    assert user_balances(user=user).available == Decimal("5")
    assert list(AuditEntry.objects.values_list("action", flat=True)) == ["ledger.adjustment"]


def test_an_action_its_service_does_not_audit_is_audited_by_the_admin(client: Any) -> None:
    alert = new_alert()
    config_admin = admin_client(client, CONFIGURATION_ADMIN)
    run_action(config_admin, "admin:core_operatoralert_changelist", "acknowledge", [alert])
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None
    [entry] = AuditEntry.objects.all()
    assert entry.action == "admin.action.acknowledge" and entry.target_type == "core.operatoralert"
    actor = entry.actor
    assert actor is not None and actor.groups.get().name == CONFIGURATION_ADMIN
    assert entry.target_id == str(alert.pk)
    assert entry.changes["acknowledged_at"]["before"] is None and entry.changes["acknowledged_at"]["after"]
    assert entry.changes["acknowledged_by_id"] == {"before": None, "after": str(actor.pk)}


# -- admin changes are audited ------------------------------------------------------------------


def test_an_admin_change_is_audited_with_before_and_after(client: Any) -> None:
    boss = User.objects.create_superuser(email="boss@ops.local", password="x")
    client.force_login(boss)
    group = Group.objects.get(name=SUPPORT)
    before = sorted(str(p) for p in group.permissions.all())
    adjust = Permission.objects.get(codename="adjust_balance")
    response = client.post(
        reverse("admin:auth_group_change", args=[group.pk]),
        {"name": "Support", "permissions": [*group.permissions.values_list("pk", flat=True), adjust.pk]},
    )
    assert response.status_code == 302, response.content
    [entry] = AuditEntry.objects.all()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (
        boss,
        "admin.change",
        "auth.group",
        str(group.pk),
    )
    assert entry.changes["name"] == {"before": SUPPORT, "after": "Support"}
    assert entry.changes["permissions"]["before"] == before
    assert entry.changes["permissions"]["after"] == sorted([*before, str(adjust)])


def test_an_admin_delete_is_audited_with_the_row_as_it_was(client: Any) -> None:
    boss = User.objects.create_superuser(email="boss@ops.local", password="x")
    client.force_login(boss)
    group = Group.objects.create(name="Temporary")
    response = client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert response.status_code == 302
    [entry] = AuditEntry.objects.all()
    assert entry.action == "admin.delete" and entry.target_id == str(group.pk)
    assert entry.changes["name"] == {"before": "Temporary", "after": None}


def test_a_password_change_in_the_admin_is_audited_masked(client: Any, user: Any) -> None:
    boss = User.objects.create_superuser(email="boss@ops.local", password="x")
    client.force_login(boss)
    secret = "N3w-Very-Secret-Pass"
    response = client.post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": secret, "password2": secret, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert user.check_password(secret)
    [entry] = AuditEntry.objects.filter(target_id=str(user.pk))
    assert entry.changes == {"password": "changed"}
    assert secret not in str(entry.changes) and user.password not in str(entry.changes)


def test_audited_saves_mask_secret_fields_and_keep_the_rest(client: Any) -> None:
    """A new operator made in the admin: the password hash is never written, the email is."""
    boss = User.objects.create_superuser(email="boss@ops.local", password="x")
    client.force_login(boss)
    secret = "An0ther-Secret-Pass"
    response = client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "new-op@ops.local",
            "password1": secret,
            "password2": secret,
            "usable_password": "true",
            **{
                f"{inline}-{count}_FORMS": "0"
                for inline in ("identities", "wallets")
                for count in ("TOTAL", "INITIAL")
            },
        },
    )
    assert response.status_code == 302, response.content
    created = User.objects.get(email="new-op@ops.local")
    [entry] = AuditEntry.objects.filter(action="admin.add")
    assert entry.target_id == str(created.pk)
    assert entry.changes["email"] == {"before": None, "after": "new-op@ops.local"}
    assert entry.changes["password"] == "changed"
    assert created.password not in str(entry.changes)


def test_the_audit_log_is_read_only_in_the_admin(client: Any, user: Any) -> None:
    boss = User.objects.create_superuser(email="boss@ops.local", password="x")
    client.force_login(boss)
    run_action(client, "admin:accounts_user_changelist", "disable_trading", [user])
    entry = AuditEntry.objects.get()
    assert client.get(reverse("admin:core_auditentry_changelist")).status_code == 200
    page = client.get(reverse("admin:core_auditentry_change", args=[entry.pk]))
    assert page.status_code == 200 and "user.trading" in page.content.decode()
    assert client.post(reverse("admin:core_auditentry_change", args=[entry.pk]), {}).status_code == 403
    assert client.get(reverse("admin:core_auditentry_add")).status_code == 403
    assert (
        client.post(reverse("admin:core_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert AuditEntry.objects.count() == 1
