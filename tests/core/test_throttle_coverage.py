"""Every API endpoint is rate limited, each class at its own rate (README "Rate limits").

The walk covers every URL pattern under /api/ and /metrics: a view added without a throttle,
or with a throttle whose scope has no rate, fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from conftest import bearer_client
from marqetfi.core.throttling import (
    HealthRateThrottle,
    ScopedRateThrottle,
    StaffRateThrottle,
    WriteRateThrottle,
)

pytestmark = pytest.mark.django_db


def rest_framework_with_rates(**scopes: str) -> dict[str, Any]:
    """REST_FRAMEWORK with these throttle rates changed, the other scopes' kept."""
    current = cast(dict[str, str], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, **scopes}}


def routes(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def api_views() -> list[tuple[str, Any]]:
    return [
        (route, callback)
        for route, callback in routes(get_resolver().url_patterns)
        if route.startswith(("api/", "^api/")) or route == "metrics"
    ]


def live_scopes(route: str, view_class: type[APIView]) -> list[str]:
    """The scopes of the view's throttles that have a rate (a scope without one limits nothing)."""
    request = APIRequestFactory().get("/" + route)
    view = view_class()
    view.request = view.initialize_request(request)
    view.kwargs = {}
    view.args = ()
    scopes = []
    for throttle in view.get_throttles():
        if isinstance(throttle, ScopedRateThrottle):
            throttle.scope = getattr(view, "throttle_scope", None)
            throttle.rate = throttle.get_rate()
        if throttle.rate is not None:
            scopes.append(throttle.scope)
    return scopes


def test_the_walk_sees_every_api_area():
    seen = {route for route, _ in api_views()}
    assert {"api/v1/health", "api/v1/auth/login", "api/v1/orders", "api/v1/admin/users", "metrics"} <= seen
    assert len(seen) > 60


def test_every_api_view_has_a_rate_limit():
    unlimited = []
    for route, callback in api_views():
        view_class = getattr(callback, "cls", None)
        if view_class is None:
            unlimited.append(f"{route}: not a DRF view (no throttles)")
            continue
        if not live_scopes(route, view_class):
            unlimited.append(f"{route}: {view_class.__name__}")
    assert unlimited == []


def test_each_endpoint_class_counts_against_its_own_scope():
    classes: dict[str, type[APIView]] = {
        route: callback.cls for route, callback in api_views() if getattr(callback, "cls", None)
    }
    rates = cast(dict[str, str], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    for route, view_class in classes.items():
        throttles = view_class.throttle_classes
        if route.startswith("api/v1/admin/") or route == "metrics":
            assert StaffRateThrottle in throttles, route
        elif route == "api/v1/health":
            assert throttles == [HealthRateThrottle]
        elif route.startswith(("api/v1/auth/", "api/v1/^auth/")):
            assert ScopedRateThrottle in throttles, route
            assert getattr(view_class, "throttle_scope", None) in {"auth", "password_reset", "user"}, route
        else:
            assert WriteRateThrottle in throttles, route
    # Sign-in is the strictest, then writes, then reads.
    per_minute = {scope: int(rate.split("/")[0]) for scope, rate in rates.items()}
    assert per_minute["auth"] < per_minute["write"] < per_minute["user"]


def test_writes_are_limited_apart_from_reads(user):
    client = bearer_client(user)
    with override_settings(REST_FRAMEWORK=rest_framework_with_rates(write="2/min", user="100/min")):
        writes = [
            client.post("/api/v1/webhooks/endpoints", {"url": "not a url"}, format="json").status_code
            for _ in range(3)
        ]
        read = client.get("/api/v1/webhooks/endpoints")

    assert writes[:2] == [400, 400]  # counted although refused: a bad write costs a request too
    assert writes[2] == 429
    assert read.status_code == 200


def test_staff_endpoints_count_against_the_admin_scope(staff):
    client = bearer_client(staff)
    with override_settings(REST_FRAMEWORK=rest_framework_with_rates(admin="2/min", user="100/min")):
        statuses = [client.get("/api/v1/admin/users").status_code for _ in range(3)]
        outside_admin = client.get("/api/v1/me")

    assert statuses == [200, 200, 429]
    assert outside_admin.status_code == 200
