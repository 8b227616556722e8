from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from conftest import bearer_client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.error_urls")]


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_400_validation_error_lists_each_field(api_client):
    error = assert_error(
        api_client.post("/t/echo", {"amount": "abc"}, format="json"), 400, "validation_error"
    )
    assert set(error["details"]) == {"amount", "leverage"}
    assert error["details"]["leverage"] == ["This field is required."]


def test_400_malformed_json_is_a_parse_error(api_client):
    response = api_client.post("/t/echo", data="{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_domain_error_keeps_its_code_status_and_details(api_client):
    response = api_client.post("/t/echo", {"amount": "10", "leverage": 100}, format="json")
    error = assert_error(response, 422, "leverage_limit_exceeded")
    assert error["details"] == {"max_leverage": "50", "requested": "100"}


def test_401_without_credentials_names_the_scheme(api_client):
    response = api_client.get("/api/v1/events")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_401_with_a_forged_token(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.forged")
    error = assert_error(api_client.get("/api/v1/events"), 401, "token_not_valid")
    assert "messages" in error["details"]


def test_403_for_a_non_staff_user(user):
    assert_error(bearer_client(user).get("/t/staff"), 403, "permission_denied")


def test_404_from_a_view_and_from_an_unknown_path(api_client):
    assert_error(api_client.get("/t/missing"), 404, "not_found")
    error = assert_error(api_client.get("/no/such/path"), 404, "not_found")
    assert error["details"] == {"path": "/no/such/path"}


def test_405_for_a_method_the_endpoint_does_not_have(api_client):
    response = api_client.delete("/t/echo")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_415_for_a_body_that_is_not_json(api_client):
    response = api_client.post("/t/echo", data="amount=1", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_500_from_an_api_view_hides_the_traceback_and_gives_the_request_id(api_client, caplog):
    response = api_client.get("/t/crash", HTTP_X_REQUEST_ID="req-crash-1")
    error = assert_error(response, 500, "internal_error")
    assert error["details"] == {"request_id": "req-crash-1"}
    assert "hunter2" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert any(r.levelname == "ERROR" and "RuntimeError" in (r.exc_text or "") for r in caplog.records)


def test_500_from_a_plain_django_view_uses_the_same_shape():
    client = APIClient(raise_request_exception=False)
    response = client.get("/t/django-crash")
    assert_error(response, 500, "internal_error")
    assert "plain Django view failed" not in response.content.decode()


def test_403_csrf_failure_on_a_session_form_post():
    client = APIClient(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert_error(response, 403, "csrf_failed")
