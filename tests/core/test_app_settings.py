"""Runtime settings: defaults in code, operator overrides that every process picks up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import DatabaseError
from django.test import override_settings
from django.urls import reverse

from conftest import bearer_client
from marqetfi.core.app_settings.cache import (
    AppSettingsCache,
    app_setting,
    app_settings_cache,
    app_settings_generation,
)
from marqetfi.core.app_settings.platform import MAINTENANCE_MODE, THROTTLE_RATES, MaintenanceMode
from marqetfi.core.app_settings.registry import APP_SETTINGS
from marqetfi.core.app_settings.services import (
    InvalidSetting,
    UnknownSetting,
    app_setting_reset,
    app_setting_set,
)
from marqetfi.core.models import AppSetting, AuditEntry
from marqetfi.core.runtime import Generation
from marqetfi.core.throttling import throttle_counters_clear
from trading.app_settings import RiskDefaults
from webhooks.app_settings import WebhookRetryPolicy

pytestmark = pytest.mark.django_db

APP_ORIGIN = "https://app.marqetfi.example"
NEW_ORIGIN = "https://partner.example:8443"


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    """The test's rows roll back without a generation bump: forget them, and the log level."""
    root = logging.getLogger()
    level = root.level
    app_settings_cache.clear()
    yield
    app_settings_cache.clear()
    root.setLevel(level)


@pytest.fixture
def change(django_capture_on_commit_callbacks, staff) -> Callable[..., Any]:
    """Set or reset a setting as an operator, running the after-commit bump as a commit would."""

    def run(key: str, value: Any = None, *, reset: bool = False) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            if reset:
                return app_setting_reset(key=key, actor=staff)
            return app_setting_set(key=key, value=value, actor=staff)

    return run


# --- defaults and reads -------------------------------------------------------------------


def test_defaults_come_from_code_and_settings():
    assert app_setting("cors_allowed_origins") == tuple(settings.CORS_ALLOWED_ORIGINS)
    assert app_setting("throttle_rates") == settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert app_setting("log_level") == settings.LOG_LEVEL
    assert app_setting("price_cache_ttl_seconds") == 30
    assert app_setting("price_staleness_limit_ms") == {
        "crypto": 5000,
        "forex": 15000,
        "indices": 15000,
        "commodities": 15000,
    }
    assert app_setting("risk_defaults") == RiskDefaults(
        max_leverage={
            "crypto": Decimal(20),
            "forex": Decimal(50),
            "indices": Decimal(25),
            "commodities": Decimal(25),
        },
        max_position_collateral=Decimal(100000),
        margin_call_level=Decimal("0.5"),
        liquidation_level=Decimal("0.1"),
    )
    assert app_setting("webhook_retry_policy") == WebhookRetryPolicy(
        max_retries=3, base_delay_seconds=30, max_delay_seconds=3600, timeout_seconds=10
    )
    assert app_setting(MAINTENANCE_MODE).enabled is False


def test_every_default_passes_its_own_validation():
    for definition in APP_SETTINGS.values():
        definition.clean(definition.default())


def test_defaults_taken_from_django_settings_follow_them():
    with override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN], LOG_LEVEL="warning"):
        assert app_setting("cors_allowed_origins") == (APP_ORIGIN,)
        assert app_setting("log_level") == "WARNING"


def test_unknown_keys_are_refused_with_404():
    with pytest.raises(UnknownSetting) as refused:
        app_setting("no_such_setting")
    assert (refused.value.status_code, refused.value.code) == (404, "unknown_setting")
    assert "log_level" in refused.value.details["known"]


def test_reads_cost_no_query_until_the_generation_moves(change, django_assert_num_queries):
    app_setting("price_cache_ttl_seconds")
    with django_assert_num_queries(0):
        for _ in range(50):
            app_setting("price_cache_ttl_seconds")
    change("price_cache_ttl_seconds", 45)
    with django_assert_num_queries(1):
        assert app_setting("price_cache_ttl_seconds") == 45
        assert app_setting("log_level") == settings.LOG_LEVEL


# --- set and reset ------------------------------------------------------------------------


def test_a_change_is_read_back_at_once_in_the_process_that_made_it(change):
    assert change("price_cache_ttl_seconds", 120) == 120
    assert app_setting("price_cache_ttl_seconds") == 120


def test_risk_values_are_stored_as_decimal_strings_and_read_as_decimals(change):
    change("risk_defaults", {"max_position_collateral": "25000.50", "max_leverage": {"crypto": 10}})

    stored = AppSetting.objects.get(key="risk_defaults").value
    assert stored == {"max_position_collateral": "25000.5", "max_leverage": {"crypto": "10"}}
    risk = app_setting("risk_defaults")
    assert risk.max_position_collateral == Decimal("25000.50")
    assert risk.max_leverage == {
        "crypto": Decimal(10),
        "forex": Decimal(50),
        "indices": Decimal(25),
        "commodities": Decimal(25),
    }


def test_an_object_setting_takes_the_entries_to_change_and_keeps_the_others(change):
    change("maintenance_mode", {"message": "Back at 14:00 UTC."})
    change("maintenance_mode", {"enabled": True})

    assert app_setting(MAINTENANCE_MODE) == MaintenanceMode(enabled=True, message="Back at 14:00 UTC.")
    assert AppSetting.objects.get(key="maintenance_mode").value == {
        "enabled": True,
        "message": "Back at 14:00 UTC.",
    }


def test_throttle_scopes_not_set_keep_following_the_rest_framework_settings(change):
    change("throttle_rates", {"user": "2/min"})

    assert AppSetting.objects.get(key="throttle_rates").value == {"user": "2/min"}
    rates = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "7/min", "user": "9/min"}}
    with override_settings(REST_FRAMEWORK=rates):
        assert app_setting("throttle_rates") == {"anon": "7/min", "user": "2/min"}


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("price_cache_ttl_seconds", 0, "value"),
        ("price_cache_ttl_seconds", 3601, "value"),
        ("price_cache_ttl_seconds", "30", "value"),
        ("price_cache_ttl_seconds", True, "value"),
        ("log_level", "TRACE", "value"),
        ("throttle_rates", {"user": "fast"}, "user"),
        ("throttle_rates", {"user": "0/min"}, "user"),
        ("throttle_rates", {"Bad Scope": "5/min"}, "Bad Scope"),
        ("throttle_rates", ["5/min"], "value"),
        ("cors_allowed_origins", ["https://app.example/"], "0"),
        ("cors_allowed_origins", [APP_ORIGIN, "app.example"], "1"),
        ("price_staleness_limit_ms", {"crypto": 50}, "crypto"),
        ("price_staleness_limit_ms", {"stocks": 5000}, "stocks"),
        ("risk_defaults", {"max_position_collateral": 1000.5}, "max_position_collateral"),
        ("risk_defaults", {"max_leverage": {"crypto": "NaN"}}, "max_leverage.crypto"),
        ("risk_defaults", {"liquidation_level": "0.6"}, "liquidation_level"),
        ("webhook_retry_policy", {"max_delay_seconds": 10}, "max_delay_seconds"),
        ("maintenance_mode", {"enabled": "yes"}, "enabled"),
        ("maintenance_mode", {"enabled": True, "reason": "x"}, "reason"),
    ],
)
def test_invalid_values_are_refused_with_400_and_nothing_is_stored(staff, key, value, path):
    with pytest.raises(InvalidSetting) as refused:
        app_setting_set(key=key, value=value, actor=staff)

    error = refused.value
    assert (error.status_code, error.code) == (400, "invalid_setting")
    assert error.details["key"] == key
    assert set(error.details["errors"]) == {path}
    assert not AppSetting.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_change_is_audited_with_the_actor_and_the_values_before_and_after(change, staff):
    defaults = dict(app_setting(THROTTLE_RATES))
    change("throttle_rates", {"user": "30/min"})

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target_id) == (
        staff,
        "app_setting.set",
        "app_setting",
        "throttle_rates",
    )
    assert entry.changes == {"before": defaults, "after": {**defaults, "user": "30/min"}}
    assert AppSetting.objects.get(key="throttle_rates").updated_by == staff


def test_setting_the_stored_value_again_changes_and_records_nothing(change):
    change("price_cache_ttl_seconds", 60)
    generation = app_settings_generation.current()
    change("price_cache_ttl_seconds", 60)

    assert AuditEntry.objects.count() == 1
    assert app_settings_generation.current() == generation


def test_reset_brings_back_the_code_default_and_is_audited(change):
    change("price_cache_ttl_seconds", 90)
    assert change("price_cache_ttl_seconds", reset=True) == 30

    assert app_setting("price_cache_ttl_seconds") == 30
    assert not AppSetting.objects.exists()
    entry = AuditEntry.objects.order_by("created_at").last()
    assert entry is not None
    assert (entry.action, entry.changes) == ("app_setting.reset", {"before": 90, "after": 30})


def test_a_stored_row_that_no_longer_validates_falls_back_to_the_default(change, caplog):
    AppSetting.objects.create(key="price_cache_ttl_seconds", value=-5)
    change("log_level", "INFO")  # any change moves the generation

    assert app_setting("price_cache_ttl_seconds") == 30
    assert "no longer validates" in caplog.text


def test_a_database_outage_keeps_the_last_loaded_values(
    change, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    change("price_cache_ttl_seconds", 45)
    assert app_setting("price_cache_ttl_seconds") == 45

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(AppSetting.objects, "values_list", unreachable)
    with django_capture_on_commit_callbacks(execute=True):
        app_settings_generation.bump()

    assert app_setting("price_cache_ttl_seconds") == 45
    assert "Cannot load app settings" in caplog.text


# --- other processes ----------------------------------------------------------------------


def test_another_process_sees_the_change_once_it_next_checks_the_generation(change):
    """A second cache with its own generation poller stands for another process."""
    other = AppSettingsCache(Generation("app_settings", check_interval=0.2))
    assert "price_cache_ttl_seconds" not in other.stored()

    change("price_cache_ttl_seconds", 15)
    assert "price_cache_ttl_seconds" not in other.stored()  # it looked less than 0.2 s ago

    time.sleep(0.25)
    assert other.stored()["price_cache_ttl_seconds"] == 15


# --- integrations -------------------------------------------------------------------------


def test_a_lower_user_rate_takes_effect_on_the_next_requests(change, user):
    client = bearer_client(user)
    assert [client.get("/api/v1/events").status_code for _ in range(3)] == [200, 200, 200]

    change("throttle_rates", {"user": "2/min"})
    throttle_counters_clear()  # a fresh minute: forget the requests made at 600/min
    statuses = [client.get("/api/v1/events").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_a_stored_rate_wins_over_the_rest_framework_settings(change, user):
    change("throttle_rates", {"user": "1/min"})
    rates = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "1000/min", "user": "1000/min"}}
    client = bearer_client(user)
    with override_settings(REST_FRAMEWORK=rates):
        assert [client.get("/api/v1/events").status_code for _ in range(2)] == [200, 429]


def preflight(client: Any, origin: str) -> Any:
    return client.options("/api/v1/events", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")


@override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN])
def test_a_cors_origin_added_at_runtime_is_granted(change, client):
    assert "Access-Control-Allow-Origin" not in preflight(client, NEW_ORIGIN)

    change("cors_allowed_origins", [APP_ORIGIN, NEW_ORIGIN.upper()])

    assert preflight(client, NEW_ORIGIN)["Access-Control-Allow-Origin"] == NEW_ORIGIN
    assert preflight(client, APP_ORIGIN)["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Access-Control-Allow-Origin" not in preflight(client, "https://evil.example")


@override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN])
def test_origins_of_the_environment_stay_granted_whatever_the_setting_holds(change, client):
    change("cors_allowed_origins", [NEW_ORIGIN])
    assert preflight(client, APP_ORIGIN)["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_maintenance_mode_closes_the_public_api_with_503_and_retry_after(change, api_client, user):
    change("maintenance_mode", {"enabled": True, "message": "Upgrading the matching engine."})

    for response in (api_client.get("/api/v1/events"), bearer_client(user).post("/api/v1/auth/login", {})):
        assert response.status_code == 503
        assert response["Retry-After"] == "60"
        assert response.json() == {
            "error": {"code": "maintenance", "message": "Upgrading the matching engine.", "details": {}}
        }


def test_maintenance_mode_leaves_health_and_both_admins_open(change, api_client, staff):
    change("maintenance_mode", {"enabled": True})

    assert api_client.get("/api/v1/health").status_code == 200
    assert api_client.get("/api/v1/admin/providers").status_code == 401  # refused by the view, not 503
    assert bearer_client(staff).get("/api/v1/admin/audit").status_code == 200
    assert api_client.get(reverse("admin:login")).status_code == 200


def test_the_api_reopens_when_maintenance_mode_is_switched_off(change, api_client):
    change("maintenance_mode", {"enabled": True})
    assert api_client.get("/api/v1/events").status_code == 503

    change("maintenance_mode", reset=True)
    assert api_client.get("/api/v1/events").status_code == 401


def test_the_log_level_is_applied_to_this_process_at_the_next_request(change, api_client):
    change("log_level", "DEBUG")
    api_client.get("/api/v1/health")
    assert logging.getLogger().level == logging.DEBUG

    change("log_level", "ERROR")
    api_client.get("/api/v1/health")
    assert logging.getLogger().level == logging.ERROR


def test_the_log_level_is_applied_before_a_task_runs(change):
    from celery.signals import task_prerun

    assert logging.getLogger().level != logging.WARNING
    change("log_level", "WARNING")
    task_prerun.send(sender=None, task_id="t-1", task=None)

    assert logging.getLogger().level == logging.WARNING


def test_the_webhook_retry_delay_doubles_up_to_the_cap():
    policy = WebhookRetryPolicy(
        max_retries=5, base_delay_seconds=30, max_delay_seconds=100, timeout_seconds=10
    )
    assert [policy.delay_seconds(n) for n in range(1, 5)] == [30, 60, 100, 100]
