"""The staff API under /api/v1/admin/: refused to traders, audited, secrets write-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conftest import bearer_client
from marqetfi.core.models import AuditEntry
from providers import registry
from providers.breaker import breaker_key, breaker_redis, breaker_state, server_ms
from providers.models import ProviderConfig, RoutingRule
from providers.services.configs import provider_ensure
from tests.documented import assert_documented

pytestmark = pytest.mark.django_db(transaction=True)  # changes propagate after commit, as in production

SECRET = "privy-app-secret-42"

ADMIN_ENDPOINTS = [
    ("get", "/api/v1/admin/providers", None),
    ("get", "/api/v1/admin/providers/privy", None),
    ("patch", "/api/v1/admin/providers/privy", {"enabled": False}),
    ("get", "/api/v1/admin/providers/privy/configs", None),
    ("post", "/api/v1/admin/providers/privy/configs", {"settings": {"app_id": "x"}}),
    ("post", "/api/v1/admin/providers/privy/configs/1/activate", None),
    ("post", "/api/v1/admin/providers/privy/rollback", {"version": 1}),
    ("get", "/api/v1/admin/providers/privy/configs/diff?from_version=1&to_version=2", None),
    ("get", "/api/v1/admin/routing-rules", None),
    ("post", "/api/v1/admin/routing-rules", {"match": "category", "value": "crypto", "venues": ["paper"]}),
    ("get", "/api/v1/admin/routing/resolve?symbol=BTCUSD&category=crypto", None),
    ("get", "/api/v1/admin/users", None),
    ("get", "/api/v1/admin/analytics", None),
    ("get", "/api/v1/admin/audit", None),
    ("get", "/api/v1/admin/settings", None),
    ("put", "/api/v1/admin/settings/maintenance_mode", {"value": {"enabled": True}}),
    ("delete", "/api/v1/admin/settings/maintenance_mode", None),
    ("post", "/api/v1/admin/providers/local/probe", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
def test_every_admin_endpoint_refuses_traders_and_anonymous_callers(api_client, user, method, path, body):
    anonymous = getattr(api_client, method)(path, body, format="json")
    assert anonymous.status_code == 401, path
    trader = getattr(bearer_client(user), method)(path, body, format="json")
    assert trader.status_code == 403, path
    assert trader.json()["error"]["code"] == "permission_denied"
    assert not ProviderConfig.objects.exists() and not RoutingRule.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.fixture
def ops(staff):
    registry.reset_cache()
    yield bearer_client(staff)
    registry.reset_cache()


def test_operator_creates_versions_secrets_are_write_only_and_every_change_is_audited(
    ops, staff, leak_guard_secret
):
    leak_guard_secret(SECRET)
    created = ops.post(
        "/api/v1/admin/providers/privy/configs",
        {"settings": {"app_id": "app-1"}, "secrets": {"app_secret": SECRET}, "comment": "go live"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["version"] == 1 and body["is_active"] is True
    assert body["secrets"] == {"app_secret": "********"}
    assert body["created_by"] == staff.email
    ops.post("/api/v1/admin/providers/privy/configs", {"settings": {"app_id": "app-2"}}, format="json")
    listed = ops.get("/api/v1/admin/providers/privy/configs")
    assert [c["version"] for c in listed.json()["results"]] == [2, 1]
    diff = ops.get("/api/v1/admin/providers/privy/configs/diff?from_version=1&to_version=2").json()
    assert diff["settings"] == {"app_id": {"from": "app-1", "to": "app-2"}}
    rolled = ops.post("/api/v1/admin/providers/privy/rollback", {"version": 1}, format="json")
    assert rolled.status_code == 201 and rolled.json()["version"] == 3
    assert registry.provider_options("privy")["app_id"] == "app-1"
    summary = ops.get("/api/v1/admin/providers/privy").json()
    assert summary["active_version"] == 3
    for response in (
        created,
        listed,
        rolled,
        ops.get("/api/v1/admin/audit"),
        ops.get("/api/v1/admin/providers"),
    ):
        assert SECRET not in response.content.decode()
    audit = ops.get("/api/v1/admin/audit?target_type=provider").json()["results"]
    assert [a["action"] for a in audit] == [
        "provider_config.rollback",
        "provider_config.create",
        "provider_config.create",
    ]
    assert {a["actor"] for a in audit} == {staff.email}
    assert audit[-1]["changes"]["secrets"] == {"app_secret": "added"}


def test_bad_config_is_a_400_in_the_error_shape(ops):
    response = ops.post(
        "/api/v1/admin/providers/privy/configs", {"settings": {"colour": "red"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_provider_config"
    assert ops.get("/api/v1/admin/providers/nope").json()["error"]["code"] == "unknown_provider"


def test_operator_switches_a_provider_off_and_on(ops, user):
    off = ops.patch("/api/v1/admin/providers/local", {"enabled": False}, format="json")
    assert off.json()["enabled"] is False
    refused = bearer_client(user).post("/api/v1/wallets/mpc", {}, format="json")
    assert refused.status_code == 503
    ops.patch("/api/v1/admin/providers/local", {"enabled": True}, format="json")
    assert bearer_client(user).post("/api/v1/wallets/mpc", {}, format="json").status_code == 201


def test_the_routing_rules_list_matches_its_documented_page(ops, venues):
    """Found by fuzzing the schema: the list answers a page, the document said a bare array."""
    ops.post(
        "/api/v1/admin/routing-rules",
        {"match": "category", "value": "crypto", "venues": ["paper"]},
        format="json",
    )

    response = ops.get("/api/v1/admin/routing-rules")

    assert response.status_code == 200
    assert [rule["value"] for rule in response.json()["results"]] == ["crypto"]
    assert response.json()["next"] is None
    assert_documented(response, path="/api/v1/admin/routing-rules", method="get")


def test_no_venue_available_is_a_documented_answer_of_route_resolution(ops, venues):
    ops.post(
        "/api/v1/admin/routing-rules",
        {"match": "category", "value": "crypto", "venues": ["paper"]},
        format="json",
    )
    ops.patch("/api/v1/admin/providers/paper", {"enabled": False}, format="json")

    response = ops.get("/api/v1/admin/routing/resolve?symbol=BTCUSD&category=crypto")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_venue_available"
    assert_documented(response, path="/api/v1/admin/routing/resolve", method="get")


def test_routing_rules_crud_and_resolution(ops, venues):
    created = ops.post(
        "/api/v1/admin/routing-rules",
        {"match": "category", "value": "crypto", "venues": ["lighter", "paper"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    resolved = ops.get("/api/v1/admin/routing/resolve?symbol=BTCUSD&category=crypto").json()
    assert resolved["venues"] == ["lighter", "paper"]
    changed = ops.patch(f"/api/v1/admin/routing-rules/{rule_id}", {"venues": ["paper"]}, format="json")
    assert changed.status_code == 200, changed.content
    assert ops.get("/api/v1/admin/routing/resolve?symbol=BTCUSD&category=crypto").json()["venues"] == [
        "paper"
    ]
    ops.patch("/api/v1/admin/providers/paper", {"enabled": False}, format="json")
    unavailable = ops.get("/api/v1/admin/routing/resolve?symbol=BTCUSD&category=crypto")
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "no_venue_available"
    assert ops.delete(f"/api/v1/admin/routing-rules/{rule_id}").status_code == 204
    bad = ops.post(
        "/api/v1/admin/routing-rules", {"match": "symbol", "value": "X", "venues": ["nasdaq"]}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_routing_rule"
    actions = list(
        AuditEntry.objects.filter(target_type="routing_rule")
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert actions == ["routing_rule.create", "routing_rule.update", "routing_rule.delete"]


def test_operator_manages_users(ops, staff, user, api_client):
    listed = ops.get(f"/api/v1/admin/users?q={user.email}").json()["results"]
    assert [u["id"] for u in listed] == [str(user.pk)]
    detail = ops.get(f"/api/v1/admin/users/{user.pk}").json()
    assert detail["email"] == user.email and "identities" in detail and "is_staff" in detail
    disabled = ops.patch(
        f"/api/v1/admin/users/{user.pk}", {"trading_enabled": False, "is_active": False}, format="json"
    )
    assert disabled.json()["trading_enabled"] is False and disabled.json()["is_active"] is False
    assert bearer_client(user).get("/api/v1/me").status_code == 401
    self_lockout = ops.patch(f"/api/v1/admin/users/{staff.pk}", {"is_staff": False}, format="json")
    assert self_lockout.status_code == 409
    audit = {a.action for a in AuditEntry.objects.filter(target_type="user")}
    assert audit == {"user.trading", "user.sign_in"}


def test_analytics_counts_users_and_wallets(ops, user):
    bearer_client(user).post("/api/v1/wallets/mpc", {}, format="json")
    body = ops.get("/api/v1/admin/analytics").json()
    assert body["users"]["total"] == 2
    assert body["wallets_by_provider"] == {"local": 1}


def test_operator_reads_changes_and_resets_runtime_settings(ops, staff):
    listed = ops.get("/api/v1/admin/settings").json()["results"]
    keys = {s["key"] for s in listed}
    assert {"maintenance_mode", "throttle_rates", "price_cache_ttl_seconds", "log_level"} <= keys
    changed = ops.put("/api/v1/admin/settings/price_cache_ttl_seconds", {"value": 12}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["value"], changed.json()["overridden"]) == (12, True)
    assert changed.json()["updated_by"] == staff.email
    bad = ops.put("/api/v1/admin/settings/price_cache_ttl_seconds", {"value": -5}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_setting"
    assert ops.get("/api/v1/admin/settings/price_cache_ttl_seconds").json()["value"] == 12
    reset = ops.delete("/api/v1/admin/settings/price_cache_ttl_seconds")
    assert (reset.json()["value"], reset.json()["overridden"]) == (30, False)
    assert ops.get("/api/v1/admin/settings/no_such_setting").status_code == 404
    actions = [a.action for a in AuditEntry.objects.order_by("created_at")]
    assert actions == ["app_setting.set", "app_setting.reset"]


def test_operator_probes_a_provider_now(ops):
    response = ops.post("/api/v1/admin/providers/local/probe")
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "ok"
    unconfigured = ops.post("/api/v1/admin/providers/privy/probe").json()
    assert unconfigured["outcome"] == "unconfigured"


def test_django_admin_masks_secrets_and_offers_activate_and_rollback(
    client, staff, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from providers.services import configs

    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    client.force_login(staff)
    configs.provider_config_create(
        name="privy", values={"app_id": "a"}, secrets={"app_secret": SECRET}, actor=staff
    )
    configs.provider_config_create(name="privy", values={"app_id": "b"}, actor=staff)
    version_1 = ProviderConfig.objects.get(version=1)
    pages = [
        client.get(reverse("admin:providers_providerconfig_changelist")),
        client.get(reverse("admin:providers_providerconfig_change", args=[version_1.pk])),
        client.get(reverse("admin:providers_provider_change", args=[version_1.provider_id])),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert SECRET not in html
        assert version_1.secrets_encrypted not in html
    assert "app_secret: ********" in pages[1].content.decode()
    response = client.post(
        reverse("admin:providers_providerconfig_changelist"),
        {"action": "rollback_to", "_selected_action": [str(version_1.pk)]},
    )
    assert response.status_code == 302
    restored = ProviderConfig.objects.get(is_active=True)
    assert (restored.version, restored.settings) == (3, {"app_id": "a"})
    assert AuditEntry.objects.filter(action="provider_config.rollback", actor=staff).exists()


@pytest.mark.parametrize("version", ["0", "2147483648", "99999999999999999999999999"])
def test_activating_a_version_beyond_the_column_is_a_404_in_the_error_shape(ops, version):
    response = ops.post(f"/api/v1/admin/providers/paper/configs/{version}/activate")

    assert response.status_code == 404
    assert response.json()["error"]["code"] in ("not_found", "config_version_not_found")


def test_an_operator_resets_a_providers_open_breaker_in_the_admin_and_it_is_audited(client, staff):
    staff.is_superuser = True
    staff.save(update_fields=["is_superuser"])
    client.force_login(staff)
    provider = provider_ensure("lifi")
    connection = breaker_redis()
    now_ms = server_ms(connection.time())
    connection.hset(breaker_key("lifi"), mapping={"state": "open", "failures": 5, "opened_at_ms": now_ms})
    assert breaker_state("lifi") == "open"

    response = client.post(
        reverse("admin:providers_provider_changelist"),
        {"action": "reset_breaker", "_selected_action": [str(provider.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert breaker_state("lifi") == "closed"
    entry = AuditEntry.objects.get(action="provider.breaker_reset", target_id="lifi")
    assert entry.actor == staff and entry.changes["breaker"] == {"before": "open", "after": "closed"}
