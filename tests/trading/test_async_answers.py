"""The paper venue answering asynchronously (pending now, the outcome by polling ``get_order``),
late or never: one fill per order, no close lost, no close made twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from conftest import bearer_client
from ledger.selectors import user_balances
from providers import registry
from providers.models import PaperOrder, PaperPosition
from trading import tasks
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.triggers import sweep

pytestmark = pytest.mark.django_db

BTC_ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "1000", "leverage": "10"}


@pytest.fixture
def paper_answer_mode() -> str:
    return "async"


@pytest.fixture
def venue(paper_options: dict[str, str]) -> Callable[..., None]:
    """``venue(answer_delay_seconds="5", drop_answers="true")``: the paper venue from now on."""

    def configure(**options: str) -> None:
        paper_options.update(options)
        registry.reset_cache()

    return configure


def later(seconds: int) -> Any:
    """Beat's clock, ``seconds`` from now."""
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False)


def beat_reconciles() -> int:
    return int(tasks.orders_reconcile.apply().get())


def open_position(client: Any, **extra: str) -> dict[str, Any]:
    response = client.post("/api/v1/orders", {**BTC_ORDER, **extra}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "filled"
    return dict(response.json())


def test_a_delayed_answer_keeps_the_order_pending_with_its_collateral_locked_then_fills_once(
    trader, drive, venue, ledger_balanced
):
    drive(BTCUSD="64000")
    venue(answer_delay_seconds="5")
    client = bearer_client(trader)

    response = client.post("/api/v1/orders", BTC_ORDER, format="json")

    assert response.status_code == 201
    order = response.json()
    assert (order["status"], order["filled_size"], order["position_id"]) == ("pending", "0", None)
    assert user_balances(user=trader).margin == Decimal("1005")  # collateral and fee, locked
    assert not Position.objects.filter(user=trader).exists()
    assert beat_reconciles() == 0  # not due yet: the venue is still working on it
    ledger_balanced()

    with later(10):
        assert beat_reconciles() == 1
        assert beat_reconciles() == 0

    body = client.get(f"/api/v1/orders/{order['id']}").json()
    assert (body["status"], body["filled_size"], body["avg_fill_price"]) == ("filled", "0.1562", "64000")
    assert Fill.objects.filter(user=trader).count() == 1
    assert PaperOrder.objects.count() == 1
    assert Position.objects.get(user=trader).size == Decimal("0.1562")
    ledger_balanced()


def test_polling_backs_off_while_the_venue_keeps_an_order_pending(trader, drive, venue):
    drive(BTCUSD="64000")
    venue(answer_delay_seconds="3600")
    order_id = bearer_client(trader).post("/api/v1/orders", BTC_ORDER, format="json").json()["id"]

    waits = []
    for _ in range(4):
        order = Order.objects.get(pk=order_id)
        assert order.next_poll_at is not None
        waits.append(order.next_poll_at - timezone.now())
        with time_machine.travel(order.next_poll_at + timedelta(milliseconds=1), tick=False):
            assert beat_reconciles() == 0

    rounded = [round(wait.total_seconds()) for wait in waits]
    assert rounded == sorted(rounded) and rounded[-1] > rounded[0], rounded
    assert Order.objects.get(pk=order_id).status == "pending"


def test_a_lost_answer_is_reconciled_by_client_id_into_one_fill_and_never_sent_again(
    trader, drive, venue, ledger_balanced
):
    drive(BTCUSD="64000")
    venue(drop_answers="true")
    client = bearer_client(trader)

    first = client.post("/api/v1/orders", {**BTC_ORDER, "client_order_id": "lost-1"}, format="json").json()
    retried = client.post("/api/v1/orders", {**BTC_ORDER, "client_order_id": "lost-1"}, format="json").json()

    assert first["status"] == "unknown"
    assert retried["id"] == first["id"]
    assert PaperOrder.objects.count() == 1  # the venue has it once, and only once
    with later(30):
        assert beat_reconciles() == 1
        assert beat_reconciles() == 0

    body = client.get(f"/api/v1/orders/{first['id']}").json()
    assert (body["status"], body["filled_size"]) == ("filled", "0.1562")
    assert Fill.objects.filter(user=trader).count() == 1
    assert PaperOrder.objects.count() == 1
    ledger_balanced()


def test_a_pending_close_keeps_the_position_closing_refuses_a_second_close_and_its_stop_waits(
    trader, drive, venue, ledger_balanced
):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = open_position(client, stop_loss="63000")["position_id"]
    venue(answer_delay_seconds="5")

    close = client.post(f"/api/v1/positions/{position_id}/close", {"type": "market"}, format="json")
    again = client.post(f"/api/v1/positions/{position_id}/close", {"type": "market"}, format="json")

    assert close.status_code == 201
    assert close.json()["status"] == "pending"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "position_closing"
    assert client.get(f"/api/v1/positions/{position_id}").json()["status"] == "closing"
    assert [p["id"] for p in client.get("/api/v1/positions").json()["results"]] == [position_id]

    drive(BTCUSD="62900")  # through the stop while the close is pending: it does nothing
    sweep.triggers_sweep()
    stop = ProtectiveOrder.objects.get(position_id=position_id, kind="stop_loss")
    assert stop.status == "armed"
    assert Order.objects.filter(position_id=position_id, purpose="close").count() == 1

    with later(10):
        assert beat_reconciles() == 1

    position = client.get(f"/api/v1/positions/{position_id}").json()
    assert position["status"] == "closed"
    fills = Fill.objects.filter(position_id=position_id, kind="close")
    assert [(f.size, f.price) for f in fills] == [(Decimal("0.1562"), Decimal("62900"))]  # the real fill
    stop.refresh_from_db()
    assert stop.status == "cancelled"
    assert user_balances(user=trader).margin == 0
    ledger_balanced()


def test_a_pending_partial_close_reduces_the_position_and_reopens_it(trader, drive, venue, ledger_balanced):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = open_position(client)["position_id"]
    venue(answer_delay_seconds="5")

    client.post(f"/api/v1/positions/{position_id}/close", {"type": "market", "size": "0.05"}, format="json")
    with later(10):
        beat_reconciles()

    position = client.get(f"/api/v1/positions/{position_id}").json()
    assert (position["status"], position["size"]) == ("open", "0.1062")
    assert (
        client.post(f"/api/v1/positions/{position_id}/close", {"type": "market"}, format="json").json()[
            "status"
        ]
        == "pending"
    )
    ledger_balanced()


def test_a_lost_close_answer_leaves_the_position_closing_until_reconciled_never_lost(
    trader, drive, venue, ledger_balanced
):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = open_position(client)["position_id"]
    venue(drop_answers="true")

    close = client.post(f"/api/v1/positions/{position_id}/close", {"type": "market"}, format="json")

    assert (close.status_code, close.json()["status"]) == (201, "unknown")
    assert Position.objects.get(pk=position_id).status == "closing"
    with later(30):
        assert beat_reconciles() == 1

    assert Position.objects.get(pk=position_id).status == "closed"
    assert Fill.objects.filter(position_id=position_id, kind="close").count() == 1
    assert PaperOrder.objects.filter(reduces_position=True).count() == 1
    assert not PaperPosition.objects.filter(status="open").exists()
    assert user_balances(user=trader).margin == 0
    ledger_balanced()


def test_a_close_the_venue_cancels_returns_the_position_to_open(trader, drive, venue, ledger_balanced):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = open_position(client)["position_id"]
    venue(answer_delay_seconds="5")
    close = client.post(f"/api/v1/positions/{position_id}/close", {"type": "market"}, format="json").json()
    at_venue = Order.objects.get(pk=close["id"]).venue_order_id
    registry.venue("paper").cancel_order(account_ref=str(trader.pk), venue_order_id=at_venue)

    with later(10):
        assert beat_reconciles() == 1

    assert client.get(f"/api/v1/orders/{close['id']}").json()["status"] == "cancelled"
    assert client.get(f"/api/v1/positions/{position_id}").json()["status"] == "open"
    assert not Fill.objects.filter(position_id=position_id, kind="close").exists()
    assert user_balances(user=trader).margin == Decimal("1000")
    ledger_balanced()


def test_a_stop_whose_close_the_venue_rejects_is_armed_again_and_the_position_open(
    trader, drive, venue, ledger_balanced
):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = open_position(client, stop_loss="63000")["position_id"]
    venue(answer_delay_seconds="5")
    drive(BTCUSD="62900")
    sweep.triggers_sweep()
    stop = ProtectiveOrder.objects.get(position_id=position_id, kind="stop_loss")
    assert stop.status == "fired"
    assert Position.objects.get(pk=position_id).status == "closing"
    # The venue closed its side of the position itself meanwhile: it refuses our close.
    PaperPosition.objects.filter(status="open").update(status="closed")

    with later(10):
        assert beat_reconciles() == 1

    close = Order.objects.get(position_id=position_id, purpose="close")
    assert (close.status, close.reject_reason) == ("rejected", "position_not_found")
    assert Position.objects.get(pk=position_id).status == "open"
    stop.refresh_from_db()
    assert stop.status == "armed"
    ledger_balanced()
