from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_a_well_formed_request_id_is_echoed(api_client):
    response = api_client.get("/api/v1/health", HTTP_X_REQUEST_ID="mobile-7f3a.42")
    assert response["X-Request-ID"] == "mobile-7f3a.42"


def test_a_request_id_is_generated_when_none_is_sent(api_client):
    first = api_client.get("/api/v1/health")["X-Request-ID"]
    second = api_client.get("/api/v1/health")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


def test_a_malformed_request_id_is_replaced_not_echoed(api_client):
    response = api_client.get("/api/v1/health", HTTP_X_REQUEST_ID="bad id\nwith-injection" + "x" * 200)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_error_responses_carry_the_request_id_too(api_client):
    response = api_client.get("/api/v1/events", HTTP_X_REQUEST_ID="req-401")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "req-401"
    unknown = api_client.get("/nowhere", HTTP_X_REQUEST_ID="req-404")
    assert unknown.status_code == 404 and unknown["X-Request-ID"] == "req-404"


def test_every_log_line_of_a_request_has_its_request_id_and_user(auth_client, user, caplog):
    caplog.set_level("INFO")
    auth_client.get("/api/v1/events", HTTP_X_REQUEST_ID="req-logged")
    access = [r for r in caplog.records if r.name == "marqetfi.access"]
    assert access, "no access log line"
    assert access[-1].request_id == "req-logged"
    assert access[-1].user_id == str(user.pk)
    assert access[-1].status == 200
