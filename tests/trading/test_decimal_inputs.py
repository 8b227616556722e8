"""Every decimal a client sends is canonical decimal text in a documented range, checked
before any arithmetic: anything else is a 400 ``validation_error`` naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import bearer_client
from ledger.selectors import user_balances
from marqetfi.core.models import AppSetting
from tests.accounts.factories import UserFactory
from tests.core.test_error_shape import assert_error
from trading.models import Order, RiskLimit

pytestmark = pytest.mark.django_db

NOT_CANONICAL: list[Any] = [
    "1_0",
    "\u0661\u0660",  # Arabic-Indic digits
    "\uff11\uff10",  # fullwidth digits
    " 10 ",
    "10\n",
    "+10",
    ".5",
    "5.",
    "",
    "1e22",
    "1E+400",
    "1e999",
    "NaN",
    "-nan",
    "sNaN",
    "Infinity",
    "-Infinity",
    "0x10",
    True,
    False,
    1e30,
    10.5,
    10**45,  # a bare JSON integer far beyond any maximum
    [],
    {},
]
IDS = [repr(value)[:20] for value in NOT_CANONICAL]
# A sample of NOT_CANONICAL for the fields that are not checked against all of it.
SAMPLE: list[Any] = ["1e22", "1_0", "\u0661\u0660", " 10 ", "NaN", True, 1e30, 10**45]
SAMPLE_IDS = [repr(value)[:20] for value in SAMPLE]

BTC_ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "1000", "leverage": "10"}
BTC_LIMIT = {**BTC_ORDER, "type": "limit", "price": "60000"}


def field_error(response: Any, *path: str) -> Any:
    error = assert_error(response, 400, "validation_error")
    details = error["details"]
    for key in path:
        assert key in details, error
        details = details[key]
    return details


@pytest.fixture
def client(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    client.raise_request_exception = False
    return client


@pytest.fixture
def ops(staff):
    client = bearer_client(staff)
    client.raise_request_exception = False
    return client


ORDER_FIELDS = [
    (BTC_ORDER, ("collateral",)),
    (BTC_ORDER, ("leverage",)),
    (BTC_LIMIT, ("price",)),
    (BTC_ORDER, ("stop_loss",)),
    (BTC_ORDER, ("take_profit",)),
    (BTC_ORDER, ("trailing_stop", "percent")),
    (BTC_ORDER, ("trailing_stop", "distance")),
]


def with_value(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    if len(path) == 1:
        return {**body, path[0]: value}
    return {**body, path[0]: {path[1]: value}}


@pytest.mark.parametrize("value", NOT_CANONICAL, ids=IDS)
@pytest.mark.parametrize("endpoint", ["/api/v1/orders", "/api/v1/orders/preview"])
def test_collateral_that_is_not_canonical_text_is_refused(client, endpoint, value):
    response = client.post(endpoint, {**BTC_ORDER, "collateral": value}, format="json")
    field_error(response, "collateral")
    assert not Order.objects.exists()


@pytest.mark.parametrize("value", SAMPLE, ids=SAMPLE_IDS)
@pytest.mark.parametrize("endpoint", ["/api/v1/orders", "/api/v1/orders/preview"])
@pytest.mark.parametrize(("body", "path"), ORDER_FIELDS, ids=[".".join(p) for _, p in ORDER_FIELDS])
def test_an_order_decimal_that_is_not_canonical_text_is_refused(client, endpoint, body, path, value):
    response = client.post(endpoint, with_value(body, path, value), format="json")
    field_error(response, *path)
    assert not Order.objects.exists()


OUT_OF_RANGE = [
    ("collateral", "0"),
    ("collateral", "-5"),
    ("collateral", "1000000000000.000001"),
    ("collateral", "10.0000001"),
    ("collateral", 10**13),
    ("leverage", "0"),
    ("leverage", "1000.01"),
    ("leverage", "10.001"),
    ("stop_loss", "0"),
    ("stop_loss", "1000000000001"),
    ("take_profit", "0.0000000000000000001"),
    ("trailing_stop.percent", "100.1"),
    ("trailing_stop.percent", "0"),
    ("trailing_stop.percent", "1.00001"),
    ("trailing_stop.distance", "-1"),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_an_order_decimal_out_of_its_range_is_refused(client, field, value):
    path = tuple(field.split("."))
    response = client.post("/api/v1/orders", with_value(BTC_ORDER, path, value), format="json")
    field_error(response, *path)
    assert not Order.objects.exists()


def test_a_whole_json_number_in_range_is_accepted(client):
    response = client.post("/api/v1/orders", {**BTC_ORDER, "collateral": 1000, "leverage": 10}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["collateral"] == "1000"


def test_trailing_zeros_do_not_count_as_decimal_places(client):
    response = client.post("/api/v1/orders", {**BTC_ORDER, "leverage": "10.000000"}, format="json")
    assert response.status_code == 201, response.json()


@pytest.fixture
def position_id(client) -> str:
    response = client.post("/api/v1/orders", BTC_ORDER, format="json")
    assert response.status_code == 201, response.json()
    return str(response.json()["position_id"])


@pytest.mark.parametrize(
    "value", [*SAMPLE, "0", "-1", "1000000000000001"], ids=[*SAMPLE_IDS, "0", "-1", "big"]
)
@pytest.mark.parametrize(
    ("body", "field"), [({"type": "market"}, "size"), ({"type": "limit"}, "price")], ids=["size", "price"]
)
def test_a_position_close_decimal_outside_canonical_text_or_range_is_refused(
    client, position_id, body, field, value
):
    response = client.post(f"/api/v1/positions/{position_id}/close", {**body, field: value}, format="json")
    field_error(response, field)
    assert Order.objects.count() == 1


@pytest.mark.parametrize("value", [*SAMPLE, "0", "1000000000001"], ids=[*SAMPLE_IDS, "0", "big"])
@pytest.mark.parametrize("path", [("stop_loss",), ("take_profit",), ("trailing_stop", "percent")])
def test_a_stop_change_outside_canonical_text_or_range_is_refused(client, position_id, path, value):
    response = client.patch(f"/api/v1/positions/{position_id}", with_value({}, path, value), format="json")
    field_error(response, *path)


# --- staff endpoints ---------------------------------------------------------------------


RISK_FIELDS = ["max_leverage", "max_position_notional", "max_total_notional", "liquidation_level"]


@pytest.mark.parametrize("value", [*SAMPLE, "-1"], ids=[*SAMPLE_IDS, "-1"])
@pytest.mark.parametrize("field", RISK_FIELDS)
def test_a_risk_limit_decimal_outside_canonical_text_or_range_is_refused(ops, paper_market, field, value):
    response = ops.post("/api/v1/admin/risk-limits", {field: value}, format="json")
    field_error(response, field)
    assert not RiskLimit.objects.exists()


@pytest.mark.parametrize(
    "value",
    [*NOT_CANONICAL, "1000000000000.000001", "-1000000000000.000001", "1.0000001"],
    ids=[*IDS, "big", "big debit", "7 places"],
)
def test_an_adjustment_amount_outside_canonical_text_or_range_is_refused(ops, value):
    user: Any = UserFactory()
    response = ops.post(
        f"/api/v1/admin/users/{user.pk}/adjustments", {"amount": value, "reason": "test"}, format="json"
    )
    field_error(response, "amount")
    assert user_balances(user=user).available == 0


@pytest.mark.parametrize("value", [*NOT_CANONICAL, "0", "1000000000001"], ids=[*IDS, "0", "big"])
def test_a_paper_price_outside_canonical_text_or_range_is_refused(ops, paper_market, value):
    response = ops.post("/api/v1/admin/paper/prices", {"symbol": "BTCUSD", "price": value}, format="json")
    field_error(response, "price")


@pytest.mark.parametrize("value", ["0.0_1", "\uff10.01", " 0.01", "1e-2", "NaN", 0.01, True])
def test_a_decimal_runtime_setting_must_be_canonical_text(ops, value):
    response = ops.put("/api/v1/admin/settings/trading_fee_rate", {"value": value}, format="json")
    assert_error(response, 400, "invalid_setting")
    assert not AppSetting.objects.filter(key="trading_fee_rate").exists()
