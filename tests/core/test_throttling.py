from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from conftest import bearer_client

pytestmark = pytest.mark.django_db


def rates(**scopes: str) -> dict:
    return {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1000/min", "user": "1000/min", **scopes},
    }


def test_a_user_over_the_limit_gets_429_with_retry_after(user):
    client = bearer_client(user)
    with override_settings(REST_FRAMEWORK=rates(user="3/min")):
        statuses = [client.get("/api/v1/events").status_code for _ in range(3)]
        limited = client.get("/api/v1/events")
    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    retry_after = int(limited["Retry-After"])
    assert 1 <= retry_after <= 60
    body = limited.json()["error"]
    assert body["code"] == "throttled"
    assert body["details"]["retry_after_seconds"] == retry_after


def test_limits_are_per_user(user, django_user_model):
    other = django_user_model.objects.create_user(email="other@example.com")
    with override_settings(REST_FRAMEWORK=rates(user="2/min")):
        first = bearer_client(user)
        assert [first.get("/api/v1/events").status_code for _ in range(3)] == [200, 200, 429]
        assert bearer_client(other).get("/api/v1/events").status_code == 200


@pytest.mark.urls("tests.core.error_urls")
def test_anonymous_callers_are_limited_by_address(api_client):
    with override_settings(REST_FRAMEWORK=rates(anon="2/min")):
        statuses = [api_client.get("/t/echo").status_code for _ in range(3)]
        from_elsewhere = api_client.get("/t/echo", REMOTE_ADDR="10.1.2.3")
    assert statuses == [200, 200, 429]
    assert from_elsewhere.status_code == 200


def test_counters_live_in_redis_so_every_web_process_shares_them(user, redis_conn):
    with override_settings(REST_FRAMEWORK=rates(user="5/min")):
        bearer_client(user).get("/api/v1/events")
    keys = [k.decode() for k in redis_conn.keys("*throttle_user_*")]
    assert any(str(user.pk) in k for k in keys)


def test_health_is_never_throttled(api_client):
    with override_settings(REST_FRAMEWORK=rates(anon="1/min")):
        statuses = {api_client.get("/api/v1/health").status_code for _ in range(3)}
    assert 429 not in statuses
