from __future__ import annotations

import copy
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from django.conf import settings
from django.test import override_settings

from marqetfi.core import health

pytestmark = pytest.mark.django_db


def rest_framework_with_rates(**scopes: str) -> dict[str, Any]:
    """REST_FRAMEWORK with these throttle rates changed, the other scopes' kept."""
    current = cast(dict[str, str], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, **scopes}}


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


def unreachable_redis() -> dict:
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = "redis://127.0.0.1:1/0"
    return caches


def test_health_checks_run_once_per_window_and_then_show_a_dependency_down(api_client):
    window = 1.0
    with override_settings(HEALTH_CACHE_SECONDS=window):
        first = api_client.get("/api/v1/health")
        with override_settings(CACHES=unreachable_redis()):
            cached = api_client.get("/api/v1/health")
            time.sleep(window)
            after_window = api_client.get("/api/v1/health")

    assert first.status_code == 200
    # Within the window: the same run, latencies and all.
    assert cached.status_code == 200
    assert cached.json()["checks"] == first.json()["checks"]
    # After it: checked again, Redis is down.
    assert after_window.status_code == 503
    assert after_window.json()["checks"]["redis"]["ok"] is False


def test_concurrent_health_calls_share_one_run(monkeypatch):
    runs: list[float] = []
    original = health.run_checks
    gate = threading.Event()

    def counted_run() -> list[health.CheckResult]:
        runs.append(time.monotonic())
        gate.wait(5)  # every caller is waiting before this run ends
        return original()

    monkeypatch.setattr(health, "run_checks", counted_run)
    with override_settings(HEALTH_CACHE_SECONDS=30), ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(health.checks_cached) for _ in range(8)]
        time.sleep(0.2)
        gate.set()
        results = [future.result(timeout=10) for future in futures]

    assert len(runs) == 1
    assert all(result is results[0] for result in results)


def test_health_is_throttled_per_client_address(api_client):
    with override_settings(REST_FRAMEWORK=rest_framework_with_rates(health="2/min")):
        statuses = [api_client.get("/api/v1/health").status_code for _ in range(3)]
        other_address = api_client.get("/api/v1/health", REMOTE_ADDR="203.0.113.9")

    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429
    assert other_address.status_code == 200


def test_health_answers_even_when_redis_cannot_count_its_throttle(api_client):
    with override_settings(CACHES=unreachable_redis()):
        response = api_client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["status"] == "down"
