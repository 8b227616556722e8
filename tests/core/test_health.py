from __future__ import annotations

import copy

import pytest
from django.conf import settings
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_health_reports_each_check_with_its_latency(api_client):
    response = api_client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body["checks"]) == {"database", "redis", "broker", "worker"}
    for name in ("database", "redis", "broker"):
        check = body["checks"][name]
        assert check["ok"] is True, check
        assert check["critical"] is True
        assert check["latency_ms"] >= 0
    # No worker runs in this test: reported, but a web node stays in rotation.
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["worker"]["critical"] is False
    assert body["status"] == "degraded"


def test_health_answers_503_when_redis_is_unreachable(api_client):
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = "redis://127.0.0.1:1/0"
    with override_settings(CACHES=caches):
        response = api_client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


def test_metrics_are_exposed_in_prometheus_format(api_client):
    api_client.get("/api/v1/health")
    response = api_client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text
