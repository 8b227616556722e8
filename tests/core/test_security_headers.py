"""Security headers on Django's answers of every kind, HSTS only over https, the https redirect.

The ASGI answers in front of Django (the cached price route, 503 ``server_busy``) are tested
with them (tests/pricing/test_fast_path.py, tests/core/test_admission.py); all of them take
the set from ``marqetfi.core.security_headers.security_headers``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, cast

import pytest
from django.conf import settings
from django.test import override_settings

from conftest import bearer_client
from marqetfi.core.security_headers import security_headers

pytestmark = pytest.mark.django_db


def rest_framework_with_rates(**scopes: str) -> dict[str, Any]:
    """REST_FRAMEWORK with these throttle rates changed, the other scopes' kept."""
    current = cast(dict[str, str], settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, **scopes}}


EXPECTED = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"
PROXY = ("HTTP_X_FORWARDED_PROTO", "https")


def assert_security_headers(response, *, hsts: bool) -> None:
    for name, value in EXPECTED.items():
        assert response[name] == value, name
    assert (response.get("Strict-Transport-Security") == HSTS) is hsts
    assert response.has_header("Strict-Transport-Security") is hsts


def test_the_set_is_derived_from_django_settings():
    assert dict(security_headers(secure=False)) == EXPECTED
    assert dict(security_headers(secure=True)) == {**EXPECTED, "Strict-Transport-Security": HSTS}
    with override_settings(X_FRAME_OPTIONS="SAMEORIGIN", SECURE_HSTS_PRELOAD=True):
        assert dict(security_headers(secure=True))["Content-Security-Policy"] == "frame-ancestors 'self'"
        assert dict(security_headers(secure=True))["Strict-Transport-Security"].endswith("; preload")


@pytest.mark.parametrize("secure", [False, True])
def test_a_200_a_404_and_a_401_carry_them(api_client, user, secure):
    ok = bearer_client(user).get("/api/v1/me", secure=secure)
    missing = api_client.get("/api/v1/no-such-thing", secure=secure)
    unauthenticated = api_client.get("/api/v1/me", secure=secure)

    assert (ok.status_code, missing.status_code, unauthenticated.status_code) == (200, 404, 401)
    for response in (ok, missing, unauthenticated):
        assert_security_headers(response, hsts=secure)


def test_a_429_carries_them(user):
    client = bearer_client(user)
    with override_settings(REST_FRAMEWORK=rest_framework_with_rates(user="1/min")):
        client.get("/api/v1/me", secure=True)
        limited = client.get("/api/v1/me", secure=True)

    assert limited.status_code == 429
    assert_security_headers(limited, hsts=True)


def test_admin_pages_carry_them(client):
    response = client.get("/admin/login/", secure=True)

    assert response.status_code == 200
    assert_security_headers(response, hsts=True)


def test_behind_the_tls_proxy_hsts_follows_x_forwarded_proto(api_client):
    with override_settings(SECURE_PROXY_SSL_HEADER=PROXY):
        proxied_https = api_client.get("/api/v1/health", HTTP_X_FORWARDED_PROTO="https")
        proxied_http = api_client.get("/api/v1/health", HTTP_X_FORWARDED_PROTO="http")
    # Without the proxy setting the header is not trusted (a client could send it).
    spoofed = api_client.get("/api/v1/health", HTTP_X_FORWARDED_PROTO="https")

    assert_security_headers(proxied_https, hsts=True)
    assert_security_headers(proxied_http, hsts=False)
    assert_security_headers(spoofed, hsts=False)


def test_plain_http_is_redirected_to_https_except_health(api_client, user):
    with override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=PROXY):
        redirected = bearer_client(user).get("/api/v1/me")
        health = api_client.get("/api/v1/health")
        through_proxy = bearer_client(user).get("/api/v1/me", HTTP_X_FORWARDED_PROTO="https")

    assert redirected.status_code == 301
    assert redirected["Location"] == "https://testserver/api/v1/me"
    assert_security_headers(redirected, hsts=False)
    assert health.status_code == 200
    assert through_proxy.status_code == 200
    assert_security_headers(through_proxy, hsts=True)


def test_in_debug_no_hsts_is_sent_even_over_https(api_client, monkeypatch):
    monkeypatch.setenv("DEBUG", "true")
    loaded = sys.modules.pop("marqetfi.settings.base")
    try:
        debug_settings = importlib.import_module("marqetfi.settings.base")
    finally:
        sys.modules["marqetfi.settings.base"] = loaded
    assert debug_settings.DEBUG is True

    with override_settings(DEBUG=True, SECURE_HSTS_SECONDS=debug_settings.SECURE_HSTS_SECONDS):
        response = api_client.get("/api/v1/health", secure=True)

    assert_security_headers(response, hsts=False)
