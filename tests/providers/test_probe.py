"""The breaker of a real adapter (Privy) against a fake Privy that fails, recovers and is
probed back to closed; its state as /api/v1/health and /metrics show it."""

from __future__ import annotations

import copy
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from django_redis import get_redis_connection
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers import registry
from providers.breaker import KEY_PREFIX, breaker_state, call_provider
from providers.errors import ProviderError, ProviderUnavailable
from providers.health import provider_stats, providers_probe_all
from providers.metrics import register_collector
from providers.models import Provider
from providers.tasks import providers_probe

pytestmark = pytest.mark.django_db

OPEN_SECONDS = 0.3
THRESHOLD = 3
WALLET_ID = "ydbz7r1e2u2qkqxlxl1k1a3e"
ADDRESS = "0x8ba1f109551bD432803012645Ac136ddd64DBA72"


class FakePrivy:
    """Answers Privy's wallet API (``/v1/wallets...``) while healthy, HTTP 500 otherwise."""

    def __init__(self) -> None:
        self.healthy = True
        self.requests: list[str] = []

    def __call__(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.path}")
        if not self.healthy:
            return Response('{"error": "Internal server error"}', status=500, content_type="application/json")
        if request.path == "/v1/wallets":
            return Response('{"data": [], "next_cursor": null}', content_type="application/json")
        wallet_id = request.path.rsplit("/", 1)[-1]
        body = f'{{"id": "{wallet_id}", "address": "{ADDRESS}", "chain_type": "ethereum"}}'
        return Response(body, content_type="application/json")


@dataclass(frozen=True)
class Names:
    """The providers of one test, named apart so that no breaker is shared with another test
    (pytest-xdist workers share the Redis)."""

    privy: str
    local: str
    dynamic: str


@pytest.fixture
def privy_server(httpserver: HTTPServer) -> FakePrivy:
    fake = FakePrivy()
    httpserver.expect_request(re.compile(r"^/v1/")).respond_with_handler(fake)
    return fake


@pytest.fixture
def names(privy_server: FakePrivy, httpserver: HTTPServer, settings: Any) -> Iterator[Names]:
    """The real Privy adapter against the fake server, the local signer, and a Dynamic
    provider without its API token; breakers that open after 3 failures for 0.3 s."""
    suffix = uuid.uuid4().hex[:8]
    names = Names(privy=f"privy-{suffix}", local=f"local-{suffix}", dynamic=f"dynamic-{suffix}")
    privy = copy.deepcopy(settings.PROVIDERS["privy"])
    privy["options"] = {
        "app_id": "clp8example0app0id0000000",
        "app_secret": "privy-app-secret-5k2Jd9QwXr7TzL0pVb3N",
        "base_url": httpserver.url_for("/"),
        "timeout": 2.0,
        "max_attempts": 1,
        "backoff_seconds": 0.001,
    }
    dynamic = copy.deepcopy(settings.PROVIDERS["dynamic"])
    dynamic["options"] = {**dynamic["options"], "api_token": ""}
    settings.PROVIDERS = {
        names.local: copy.deepcopy(settings.PROVIDERS["local"]),
        names.privy: privy,
        names.dynamic: dynamic,
    }
    settings.PROVIDER_BREAKER_FAILURE_THRESHOLD = THRESHOLD
    settings.PROVIDER_BREAKER_OPEN_SECONDS = OPEN_SECONDS
    settings.PROVIDER_PROBE_INTERVAL_SECONDS = 60.0
    registry.reset_cache()
    yield names
    registry.reset_cache()
    connection = get_redis_connection("default")
    for name in (names.privy, names.local, names.dynamic):
        keys = list(connection.scan_iter(f"{KEY_PREFIX}{name}*"))
        if keys:
            connection.delete(*keys)


def get_wallet(names: Names) -> Any:
    adapter = registry.wallet_provider(names.privy)
    return call_provider(names.privy, adapter.get_wallet, provider_wallet_id=WALLET_ID)


def test_privy_breaker_opens_on_failures_and_the_probe_closes_it_after_recovery(
    names: Names, privy_server: FakePrivy, api_client: Any, settings: Any
) -> None:
    """The open period is long while the open state is inspected, then cut short to end it,
    so that a slow machine cannot make the assertions race the clock."""
    register_collector()
    settings.PROVIDER_BREAKER_OPEN_SECONDS = 60.0
    privy = names.privy
    assert get_wallet(names).address == ADDRESS

    # Privy fails: each call reaches it once (no retries configured) until the breaker opens.
    privy_server.healthy = False
    for _ in range(THRESHOLD):
        with pytest.raises(ProviderError) as raised:
            get_wallet(names)
        assert raised.value.status_code == 500
    assert breaker_state(privy) == "open"
    with pytest.raises(ProviderUnavailable):
        get_wallet(names)
    assert privy not in providers_probe_all()  # nothing to probe until the open period ends
    assert len(privy_server.requests) == 1 + THRESHOLD

    health = api_client.get("/api/v1/health")
    assert health.status_code == 200  # an open provider breaker never fails the health check
    entry = health.json()["providers"][privy]
    assert (entry["enabled"], entry["configured"], entry["state"]) == (True, True, "open")
    assert entry["error_rate"] == pytest.approx(THRESHOLD / (THRESHOLD + 1))
    assert entry["latency_ms_p95"] > 0
    assert entry["opened_at"] is not None
    assert "last_error" not in entry  # vendor messages stay out of a public endpoint
    metrics = api_client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {django_settings.METRICS_TOKEN}"
    ).content.decode()
    assert f'marqetfi_provider_breaker_state{{provider="{privy}"}} 2.0' in metrics
    assert f'marqetfi_provider_failures_total{{provider="{privy}"}} {THRESHOLD}.0' in metrics
    assert f'marqetfi_provider_rejected_total{{provider="{privy}"}} 1.0' in metrics

    # Privy recovers; once the open period is over the probe makes the half-open trial.
    privy_server.healthy = True
    settings.PROVIDER_BREAKER_OPEN_SECONDS = OPEN_SECONDS
    time.sleep(OPEN_SECONDS)
    assert breaker_state(privy) == "half_open"
    assert providers_probe_all()[privy] == "ok"

    assert privy_server.requests[-1] == "GET /v1/wallets"  # health_check(), the trial
    assert breaker_state(privy) == "closed"
    assert provider_stats(privy)["probe_outcome"] == "ok"
    assert api_client.get("/api/v1/health").json()["providers"][privy]["state"] == "closed"
    metrics = api_client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {django_settings.METRICS_TOKEN}"
    ).content.decode()
    assert f'marqetfi_provider_breaker_state{{provider="{privy}"}} 0.0' in metrics
    assert get_wallet(names).provider_wallet_id == WALLET_ID


def test_a_probe_of_a_provider_still_failing_opens_its_breaker_again(
    names: Names, privy_server: FakePrivy
) -> None:
    privy_server.healthy = False
    for _ in range(THRESHOLD):
        with pytest.raises(ProviderError):
            get_wallet(names)
    opened_at = provider_stats(names.privy)["opened_at"]
    time.sleep(OPEN_SECONDS + 0.05)

    assert providers_probe_all()[names.privy] == "failed"

    stats = provider_stats(names.privy)
    assert stats["state"] == "open"
    assert stats["opened_at"] is not None and opened_at is not None and stats["opened_at"] > opened_at
    assert stats["probe_outcome"] == "failed"
    assert stats["probe_detail"] is not None and "HTTP 500" in stats["probe_detail"]


def test_healthy_providers_are_probed_once_per_interval(names: Names, privy_server: FakePrivy) -> None:
    first = providers_probe_all()
    second = providers_probe_all()

    assert first == {names.local: "ok", names.privy: "ok", names.dynamic: "unconfigured"}
    assert second == {}
    assert privy_server.requests == ["GET /v1/wallets"]


def test_an_unconfigured_provider_is_reported_but_never_opens_its_breaker(names: Names) -> None:
    for _ in range(THRESHOLD + 1):
        get_redis_connection("default").delete(f"{KEY_PREFIX}{names.dynamic}:probe")
        assert providers_probe_all()[names.dynamic] == "unconfigured"

    stats = provider_stats(names.dynamic)
    assert (stats["state"], stats["breaker"]) == ("unconfigured", "closed")
    assert stats["probe_detail"] is not None and "api_token" in stats["probe_detail"]
    assert stats["calls"] == 0


def test_switched_off_providers_are_not_probed(names: Names, privy_server: FakePrivy) -> None:
    Provider.objects.create(name=names.privy, kind="wallet", enabled=False)
    registry.reset_cache()

    assert names.privy not in providers_probe_all()
    assert privy_server.requests == []


def test_the_beat_task_runs_the_probe(names: Names, privy_server: FakePrivy) -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["providers-probe"]
    assert entry["task"] == providers_probe.name

    assert providers_probe.apply().get()[names.privy] == "ok"
    assert privy_server.requests == ["GET /v1/wallets"]
