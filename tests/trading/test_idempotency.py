"""Client-supplied idempotency on writes: ``client_order_id`` and ``Idempotency-Key`` records,
their lifetime and the purge of expired ones."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from conftest import bearer_client
from trading.idempotency import request_fingerprint
from trading.ledger.selectors import user_balances
from trading.models import IdempotentRequest, Order

pytestmark = pytest.mark.django_db

BTC_ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "1000", "leverage": "10"}


def place(client: Any, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1/orders", body, format="json", headers=headers)


def fingerprint_of(body: dict[str, Any]) -> str:
    django_request = APIRequestFactory().post("/api/v1/orders", body, format="json")
    return request_fingerprint(Request(django_request, parsers=[JSONParser()]))


def age(record_key: str, *, seconds: float) -> None:
    IdempotentRequest.objects.filter(key=record_key).update(
        created_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_a_client_order_id_reused_for_another_order_is_refused(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)

    first = place(client, {**BTC_ORDER, "client_order_id": "abc-1"})
    other = place(client, {**BTC_ORDER, "leverage": "5", "client_order_id": "abc-1"})

    assert first.status_code == 201
    assert other.status_code == 409, other.json()
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.json()["error"]["details"]["client_order_id"] == "abc-1"
    assert "Idempotent-Replayed" not in other.headers
    assert Order.objects.filter(user=trader).count() == 1
    assert user_balances(user=trader).margin == Decimal("1000")


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": "ETHUSD"},
        {"side": "short"},
        {"collateral": "999"},
        {"stop_loss": "60000"},
        {"take_profit": "70000"},
        {"trailing_stop": {"percent": "2"}},
        {"type": "limit", "price": "63000"},
    ],
)
def test_every_defining_field_of_an_order_counts_for_its_client_order_id(trader, drive, change):
    drive(BTCUSD="64000", ETHUSD="3000")
    client = bearer_client(trader)
    place(client, {**BTC_ORDER, "client_order_id": "abc-2"})

    other = place(client, {**BTC_ORDER, **change, "client_order_id": "abc-2"})

    assert other.status_code == 409, other.json()
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def test_the_same_order_written_differently_replays_its_client_order_id(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    first = place(client, {**BTC_ORDER, "client_order_id": "abc-3"})

    again = place(
        client, {**BTC_ORDER, "symbol": "btcusd", "collateral": "1000.00", "client_order_id": "abc-3"}
    )

    assert again.status_code == 200, again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
