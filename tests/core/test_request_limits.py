"""Hostile request bodies and URLs answer in the error shape, never 500, DEBUG or not."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from conftest import bearer_client
from tests.accounts.factories import UserFactory
from tests.core.test_error_shape import assert_error

pytestmark = pytest.mark.django_db

USER_ID = "00000000-0000-0000-0000-000000000001"
POSITION_ID = "00000000-0000-0000-0000-000000000002"

PUBLIC_POSTS = [
    "/api/v1/auth/login",
    "/api/v1/auth/register",
    "/api/v1/auth/token/refresh",
    "/api/v1/auth/siwe/verify",
    "/api/v1/auth/oauth/google",
]
TRADER_POSTS = [
    "/api/v1/orders",
    "/api/v1/orders/preview",
    f"/api/v1/positions/{POSITION_ID}/close",
    "/api/v1/wallets/external",
]
STAFF_POSTS = [
    "/api/v1/admin/risk-limits",
    f"/api/v1/admin/users/{USER_ID}/adjustments",
    "/api/v1/admin/paper/prices",
]


@pytest.fixture
def clients() -> dict[str, APIClient]:
    anonymous = APIClient(raise_request_exception=False)
    trader = bearer_client(UserFactory())
    trader.raise_request_exception = False
    UserFactory(id=USER_ID)  # the user the adjustments endpoint looks up before reading the body
    staff = bearer_client(UserFactory(is_staff=True, is_superuser=True))
    staff.raise_request_exception = False
    return {"public": anonymous, "trader": trader, "staff": staff}


ENDPOINTS = (
    [("public", path) for path in PUBLIC_POSTS]
    + [("trader", path) for path in TRADER_POSTS]
    + [("staff", path) for path in STAFF_POSTS]
)


def post_raw(client: APIClient, path: str, body: str, **headers: Any) -> Any:
    return client.generic("POST", path, body, content_type="application/json", **headers)


@pytest.mark.parametrize(("who", "path"), ENDPOINTS)
@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_413(clients, who, path):
    body = json.dumps({"email": "a@example.com", "password": "x" * 2000})
    error = assert_error(post_raw(clients[who], path, body), 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 1000


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_an_oversized_body_with_an_idempotency_key_is_413(clients):
    body = json.dumps({"symbol": "BTCUSD", "padding": "x" * 2000})
    response = post_raw(clients["trader"], "/api/v1/orders", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert_error(response, 413, "payload_too_large")


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
def test_a_query_string_with_too_many_fields_is_413(clients):
    query = "&".join(f"f{i}=1" for i in range(20))
    assert_error(clients["trader"].get(f"/api/v1/orders?{query}"), 413, "payload_too_large")


@override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=10)
def test_a_query_string_with_too_many_fields_is_413_on_a_public_endpoint(clients):
    query = "&".join(f"f{i}=1" for i in range(20))
    assert_error(clients["public"].get(f"/api/v1/pairs?{query}"), 413, "payload_too_large")


@pytest.mark.parametrize(("who", "path"), ENDPOINTS)
def test_deeply_nested_json_is_a_parse_error(clients, who, path):
    body = "[" * 100_000 + "]" * 100_000
    assert_error(post_raw(clients[who], path, body), 400, "parse_error")


@pytest.mark.parametrize(("who", "path"), ENDPOINTS)
def test_deeply_nested_json_inside_an_object_is_a_parse_error(clients, who, path):
    body = '{"email": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"
    assert_error(post_raw(clients[who], path, body), 400, "parse_error")


# --- DEBUG on (make run): Django's HTML debug pages must not answer under /api/ ----------


@override_settings(DEBUG=True)
def test_a_malformed_id_in_the_path_is_a_json_404_with_debug_on(clients):
    response = clients["trader"].get("/api/v1/orders/not-a-uuid")
    error = assert_error(response, 404, "not_found")
    assert error["details"] == {"path": "/api/v1/orders/not-a-uuid"}


@override_settings(DEBUG=True)
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/nothing", "/api/", "/api/v1/orders/"])
def test_an_unknown_api_path_is_a_json_404_with_debug_on(clients, path):
    assert_error(clients["public"].get(path), 404, "not_found")


@override_settings(DEBUG=True)
def test_a_view_outside_drf_failing_under_api_is_a_json_500_with_debug_on():
    client = APIClient(raise_request_exception=False)
    with override_settings(ROOT_URLCONF="tests.core.error_urls"):
        response = client.get("/api/t/django-crash", HTTP_X_REQUEST_ID="req-debug-500")
    error = assert_error(response, 500, "internal_error")
    assert error["details"] == {"request_id": "req-debug-500"}
    assert "plain Django view failed" not in response.content.decode()


@override_settings(DEBUG=True)
def test_a_view_outside_drf_raising_404_under_api_is_json_with_debug_on():
    client = APIClient(raise_request_exception=False)
    with override_settings(ROOT_URLCONF="tests.core.error_urls"):
        response = client.get("/api/t/django-missing")
    assert_error(response, 404, "not_found")


@override_settings(DEBUG=True)
def test_a_middleware_failure_under_api_is_a_json_500_with_debug_on():
    client = APIClient(raise_request_exception=False)
    middleware = ["tests.core.error_urls.ExplodingMiddleware"]
    with override_settings(ROOT_URLCONF="tests.core.error_urls"):
        from django.conf import settings

        with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, *middleware]):
            response = client.get("/api/v1/health?explode=1")
    assert_error(response, 500, "internal_error")


@override_settings(DEBUG=True, DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_an_oversized_body_is_413_with_debug_on(clients):
    body = json.dumps({"email": "a@example.com", "password": "x" * 2000})
    assert_error(post_raw(clients["public"], "/api/v1/auth/login", body), 413, "payload_too_large")


@override_settings(DEBUG=True)
def test_the_admin_site_keeps_its_html_404_with_debug_on(clients):
    response = clients["public"].get("/admin/no-such-page/")
    assert response.status_code in (302, 404)
    assert not response["Content-Type"].startswith("application/json")


def test_brackets_inside_strings_do_not_count_as_nesting(clients):
    password = '\\"' + "[{" * 5000
    body = json.dumps({"email": "nobody@example.com", "password": password})
    response = post_raw(clients["public"], "/api/v1/auth/login", body)
    assert response.status_code in (400, 401), response.content
    assert response.json()["error"]["code"] != "parse_error"


def test_nesting_up_to_the_limit_is_read():
    from marqetfi.core.api import MAX_JSON_DEPTH, json_too_deep

    assert not json_too_deep("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert json_too_deep("[" * (MAX_JSON_DEPTH + 1))
    assert not json_too_deep('["' + "[" * 1000 + '", "\\\\", "\\"{{{"]')
