"""/metrics answers a scraper holding METRICS_TOKEN and staff; anyone else is refused."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from conftest import bearer_client

pytestmark = pytest.mark.django_db


def scrape_headers(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_a_scraper_with_the_metrics_token_reads_the_prometheus_text(api_client):
    api_client.get("/api/v1/health")

    response = api_client.get("/metrics", **scrape_headers(settings.METRICS_TOKEN))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text


def test_a_scraper_asking_for_text_only_gets_it(api_client):
    response = api_client.get(
        "/metrics", HTTP_ACCEPT="text/plain;version=0.0.4", **scrape_headers(settings.METRICS_TOKEN)
    )

    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_anonymous_gets_401_in_the_error_shape(api_client):
    response = api_client.get("/metrics")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"django_http_requests" not in response.content


def test_a_wrong_token_is_refused(api_client):
    response = api_client.get("/metrics", **scrape_headers(settings.METRICS_TOKEN + "x"))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_without_a_configured_token_an_empty_bearer_is_refused(api_client):
    with override_settings(METRICS_TOKEN=""):
        response = api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


def test_a_trader_gets_403(user):
    response = bearer_client(user).get("/metrics")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_staff_read_it_with_an_access_token_or_the_admin_session(staff, api_client):
    assert bearer_client(staff).get("/metrics").status_code == 200

    api_client.force_login(staff)
    assert api_client.get("/metrics").status_code == 200
