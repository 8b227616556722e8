"""A cursor a client forged is a 404 in the error shape on every cursor-paginated list."""

from __future__ import annotations

import base64

import pytest

from conftest import bearer_client
from tests.accounts.factories import UserFactory
from tests.core.test_error_shape import assert_error

pytestmark = pytest.mark.django_db

TRADER_LISTS = ["/api/v1/orders", "/api/v1/positions", "/api/v1/trades", "/api/v1/events", "/api/v1/wallets"]
STAFF_LISTS = [
    "/api/v1/admin/users",
    "/api/v1/admin/audit",
    "/api/v1/admin/risk-limits",
    "/api/v1/admin/positions",
]
PUBLIC_LISTS = ["/api/v1/pairs"]


def cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


FORGED = {
    "not base64": "garbage",
    "base64 of junk": base64.b64encode(b"\xff\xfe junk").decode(),
    "position with a NUL": cursor("p=a%00b"),
    "reverse not a number": cursor("r=x&p=1"),
}
# Positions no time or sequence number can be (every list but the pairs, ordered by symbol).
FORGED_POSITIONS = {
    "position not a date": cursor("p=not-a-date"),
    "position out of range": cursor("p=99999999999999999999999999"),
    "position a huge negative": cursor("p=-99999999999999999999999999&r=1"),
    "position a year past 9999": cursor("p=99999-01-01T00:00:00%2B00:00"),
}


@pytest.fixture
def clients():
    trader = bearer_client(UserFactory())
    staff = bearer_client(UserFactory(is_staff=True, is_superuser=True))
    from rest_framework.test import APIClient

    return {"trader": trader, "staff": staff, "public": APIClient()}


LISTS = (
    [("trader", path) for path in TRADER_LISTS]
    + [("staff", path) for path in STAFF_LISTS]
    + [("public", path) for path in PUBLIC_LISTS]
)


@pytest.mark.parametrize(("who", "path"), LISTS)
@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
def test_a_forged_cursor_is_a_404_not_a_500(clients, who, path, forged):
    client = clients[who]
    client.raise_request_exception = False
    error = assert_error(client.get(path, {"cursor": forged}), 404, "not_found")
    assert error["message"] == "Invalid cursor."


@pytest.mark.parametrize(("who", "path"), LISTS[:-1])
@pytest.mark.parametrize("forged", FORGED_POSITIONS.values(), ids=FORGED_POSITIONS.keys())
def test_a_cursor_position_the_ordering_field_cannot_hold_is_a_404(clients, who, path, forged):
    client = clients[who]
    client.raise_request_exception = False
    error = assert_error(client.get(path, {"cursor": forged}), 404, "not_found")
    assert error["message"] == "Invalid cursor."


@pytest.mark.parametrize(("who", "path"), LISTS)
def test_a_cursor_the_api_wrote_still_pages(clients, who, path):
    client = clients[who]
    position = {"/api/v1/events": "5", "/api/v1/pairs": "BTCUSD"}.get(path, "2020-01-01T00:00:00%2B00:00")
    first = client.get(path, {"limit": 1, "cursor": cursor(f"p={position}")})
    assert first.status_code == 200, first.content
    assert set(first.json()) >= {"results", "next"}


@pytest.mark.parametrize("after_seq", [str(2**63), "9" * 40])
def test_an_event_sequence_beyond_the_database_integer_is_a_validation_error(clients, after_seq):
    client = clients["trader"]
    client.raise_request_exception = False
    error = assert_error(client.get("/api/v1/events", {"after_seq": after_seq}), 400, "validation_error")
    assert "after_seq" in error["details"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "get",
            "/api/v1/admin/providers/paper/configs/diff?from_version=1&to_version=99999999999999999999",
            None,
        ),
        ("post", "/api/v1/admin/providers/paper/rollback", {"version": 2**40}),
    ],
)
def test_a_config_version_beyond_the_database_integer_is_a_validation_error(clients, method, path, body):
    client = clients["staff"]
    client.raise_request_exception = False
    response = getattr(client, method)(path, body, format="json") if body else client.get(path)
    assert_error(response, 400, "validation_error")
