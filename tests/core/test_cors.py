from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

APP_ORIGIN = "https://app.marqetfi.example"


@override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN])
def test_an_allowed_browser_origin_may_call_the_api_and_read_our_headers(client):
    preflight = client.options(
        "/api/v1/events",
        HTTP_ORIGIN=APP_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, idempotency-key, x-request-id",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == APP_ORIGIN
    allowed = preflight["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "idempotency-key", "x-request-id"} <= {h.strip() for h in allowed.split(",")}

    response = client.get("/api/v1/health", HTTP_ORIGIN=APP_ORIGIN)
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"x-request-id", "retry-after"} <= exposed


@override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN])
def test_other_origins_get_no_cors_grant(client):
    response = client.get("/api/v1/health", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
