"""The database or Redis out of reach is a 503 with a stable code and ``Retry-After``, in the
one error shape, wherever the request meets it: a DRF view, a plain Django view, a middleware."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.dependency_error_urls")]

REDIS_DOWN = {
    "error": {
        "code": "redis_unavailable",
        "message": "A service this request needs (Redis) cannot be reached right now; retry shortly.",
        "details": {"retry_after_seconds": 5},
    }
}


def assert_unavailable(response: Any, body: dict[str, Any]) -> None:
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert response.json() == body


def test_redis_refusing_a_drf_view_is_503_redis_unavailable() -> None:
    assert_unavailable(APIClient(raise_request_exception=False).get("/api/t/redis-down"), REDIS_DOWN)


def test_a_dropped_database_connection_is_503_database_unavailable() -> None:
    response = APIClient(raise_request_exception=False).get("/api/t/database-down")
    assert_unavailable(
        response,
        {
            "error": {
                "code": "database_unavailable",
                "message": "The database cannot be reached right now; retry shortly.",
                "details": {"retry_after_seconds": 5},
            }
        },
    )


@pytest.mark.parametrize("debug", [False, True])
def test_redis_refusing_a_plain_django_view_is_503_redis_unavailable(debug: bool) -> None:
    with override_settings(DEBUG=debug):
        response = APIClient(raise_request_exception=False).get("/api/t/plain-redis-down")
    assert_unavailable(response, REDIS_DOWN)


def test_redis_refusing_a_middleware_is_503_redis_unavailable() -> None:
    """(With ``DEBUG`` on, Django renders a middleware's exception as its debug page before our
    handler sees it: that answer is the 500 ``internal_error`` shape.)"""
    middleware = [*settings.MIDDLEWARE, "tests.core.dependency_error_urls.RedisDownMiddleware"]
    with override_settings(DEBUG=False, MIDDLEWARE=middleware):
        response = APIClient(raise_request_exception=False).get("/api/v1/health?redis_down=1")
    assert_unavailable(response, REDIS_DOWN)


def test_the_outage_is_logged_as_a_warning_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    APIClient(raise_request_exception=False).get("/api/t/redis-down")
    (record,) = [r for r in caplog.records if r.name == "marqetfi.api"]
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith("redis_unavailable: ConnectionError: Error 111")
    assert record.exc_info is None


@pytest.mark.urls("marqetfi.urls")
def test_the_openapi_schema_tells_clients_about_the_503_codes() -> None:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    description = response.json()["info"]["description"]
    for code in ("server_busy", "database_unavailable", "redis_unavailable", "Retry-After"):
        assert code in description


def test_a_missing_table_on_sqlite_stays_a_500_bug() -> None:
    response = APIClient(raise_request_exception=False).get("/api/t/sqlite-bug")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
