"""Client-supplied idempotency on writes: ``client_order_id`` and ``Idempotency-Key`` records,
their lifetime and the purge of expired ones."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from conftest import bearer_client
from ledger.selectors import user_balances
from trading import tasks
from trading.idempotency import request_fingerprint
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


def test_an_expired_idempotency_key_is_a_new_request(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    first = place(client, BTC_ORDER, **{"Idempotency-Key": "k-old"})
    age("k-old", seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS + 1)

    again = place(client, {**BTC_ORDER, "leverage": "5"}, **{"Idempotency-Key": "k-old"})

    assert again.status_code == 201, again.json()
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert Order.objects.filter(user=trader).count() == 2
    assert IdempotentRequest.objects.get(key="k-old").status_code == 201


def test_an_idempotency_key_within_its_lifetime_still_replays(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    first = place(client, BTC_ORDER, **{"Idempotency-Key": "k-young"})
    age("k-young", seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS - 60)

    again = place(client, BTC_ORDER, **{"Idempotency-Key": "k-young"})

    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_the_key_lifetime_is_a_setting(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    with override_settings(IDEMPOTENCY_KEY_TTL_SECONDS=60):
        place(client, BTC_ORDER, **{"Idempotency-Key": "k-short"})
        age("k-short", seconds=61)
        again = place(client, BTC_ORDER, **{"Idempotency-Key": "k-short"})
    assert again.status_code == 201
    assert Order.objects.filter(user=trader).count() == 2


def test_a_request_still_running_answers_in_progress(trader, drive):
    drive(BTCUSD="64000")
    IdempotentRequest.objects.create(
        user=trader,
        key="k-busy",
        method="POST",
        path="/api/v1/orders",
        request_hash=fingerprint_of(BTC_ORDER),
    )

    response = place(bearer_client(trader), BTC_ORDER, **{"Idempotency-Key": "k-busy"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotent_request_in_progress"
    assert not Order.objects.exists()


def test_a_request_abandoned_in_progress_can_be_retried_after_the_timeout(trader, drive):
    drive(BTCUSD="64000")
    IdempotentRequest.objects.create(
        user=trader,
        key="k-crashed",
        method="POST",
        path="/api/v1/orders",
        request_hash=fingerprint_of(BTC_ORDER),
    )
    age("k-crashed", seconds=settings.IDEMPOTENCY_IN_PROGRESS_TIMEOUT_SECONDS + 1)
    client = bearer_client(trader)

    retried = place(client, BTC_ORDER, **{"Idempotency-Key": "k-crashed"})
    replayed = place(client, BTC_ORDER, **{"Idempotency-Key": "k-crashed"})

    assert retried.status_code == 201, retried.json()
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["id"] == retried.json()["id"]
    assert Order.objects.filter(user=trader).count() == 1


def test_the_purge_deletes_expired_records_only(user):
    ttl = settings.IDEMPOTENCY_KEY_TTL_SECONDS
    for key, seconds in (("old-done", ttl + 5), ("old-stuck", ttl + 5), ("young", ttl - 60)):
        IdempotentRequest.objects.create(
            user=user,
            key=key,
            method="POST",
            path="/api/v1/orders",
            request_hash="0" * 64,
            status_code=None if key == "old-stuck" else 201,
        )
        age(key, seconds=seconds)

    assert tasks.idempotent_requests_purge() == 2

    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["young"]


def test_the_purge_runs_on_the_beat_schedule():
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "trading.tasks.idempotent_requests_purge" in tasks_scheduled
