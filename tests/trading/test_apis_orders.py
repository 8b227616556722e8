"""Placing, previewing, replaying and cancelling orders over HTTP, on the paper venue."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from conftest import bearer_client
from ledger.selectors import user_balances
from marqetfi.core.models import Event
from tests.documented import assert_documented
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from trading.models import Fill, Order, Position

pytestmark = pytest.mark.django_db

BTC_ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "1000", "leverage": "10"}


def place(client: Any, body: dict[str, Any], **headers: str) -> Any:
    return client.post("/api/v1/orders", body, format="json", headers=headers)


def test_a_market_long_fills_opens_a_position_and_locks_margin(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")
    client = bearer_client(trader)

    response = place(client, {**BTC_ORDER, "client_order_id": "first"})

    assert response.status_code == 201, response.json()
    order = response.json()
    assert order["status"] == "filled"
    assert order["provider"] == "paper"
    assert order["filled_size"] == "0.1562"  # 10,000 USDC at 64,000, down to the 0.0001 step
    assert order["avg_fill_price"] == "64000"
    assert order["fee"] == "5"  # 5 bps of 10,000
    assert order["routing"]["candidates"] == ["paper"]
    assert order["routing"]["attempts"] == [{"provider": "paper", "status": "filled"}]
    position = Position.objects.get(pk=order["position_id"])
    assert (position.size, position.entry_price, position.collateral) == (
        Decimal("0.1562"),
        Decimal("64000"),
        Decimal("1000"),
    )
    balances = user_balances(user=trader)
    assert balances.available == Decimal("8995")  # 10,000 - 1,000 collateral - 5 fee
    assert balances.margin == Decimal("1000")
    assert Fill.objects.filter(user=trader, kind="open").count() == 1
    types = list(Event.objects.filter(user=trader).order_by("seq").values_list("type", flat=True))
    assert types == ["order.created", "order.filled", "trade.executed", "position.opened"]
    ledger_balanced()


def test_account_shows_balances_equity_and_unrealized_pnl(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    place(client, BTC_ORDER)
    drive(BTCUSD="65000")

    account = client.get("/api/v1/account").json()

    # 0.1562 BTC up 1,000 USD each: 156.2 USDC
    assert account == {
        "currency": "USDC",
        "available": "8995",
        "margin_locked": "1000",
        "equity": "10151.2",
        "unrealized_pnl": "156.2",
        "open_positions": 1,
    }


def test_positions_list_live_pnl_and_the_position_can_be_closed_at_market(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    place(client, BTC_ORDER)
    drive(BTCUSD="65000")

    listed = client.get("/api/v1/positions").json()["results"]
    assert [(p["symbol"], p["mark_price"], p["unrealized_pnl"]) for p in listed] == [
        ("BTCUSD", "65000", "156.2")
    ]
    closed = client.post(f"/api/v1/positions/{listed[0]['id']}/close", {"type": "market"}, format="json")

    assert closed.status_code == 201, closed.json()
    assert closed.json()["purpose"] == "close"
    assert closed.json()["avg_fill_price"] == "65000"
    position = Position.objects.get(pk=listed[0]["id"])
    assert position.status == "closed"
    assert position.realized_pnl == Decimal("156.2")
    # 8,995 + 1,000 collateral + 156.2 profit - 5.0765 closing fee (5 bps of 10,153)
    assert user_balances(user=trader).available == Decimal("10146.1235")
    assert user_balances(user=trader).margin == Decimal(0)
    assert client.get("/api/v1/positions").json()["results"] == []
    assert [p["status"] for p in client.get("/api/v1/positions?status=all").json()["results"]] == ["closed"]
    assert [t["kind"] for t in client.get("/api/v1/trades").json()["results"]] == ["close", "open"]
    ledger_balanced()


def test_a_partial_close_keeps_the_rest_open_with_its_share_of_collateral(trader, drive, ledger_balanced):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = place(client, BTC_ORDER).json()["position_id"]
    drive(BTCUSD="63000")

    response = client.post(
        f"/api/v1/positions/{position_id}/close", {"type": "market", "size": "0.0781"}, format="json"
    )

    assert response.status_code == 201, response.json()
    position = Position.objects.get(pk=position_id)
    assert position.status == "open"
    assert position.size == Decimal("0.0781")
    assert position.collateral == Decimal("500")
    assert position.realized_pnl == Decimal("-78.1")
    ledger_balanced()


def test_a_partial_close_off_the_size_step_is_refused_unless_rounding(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    position_id = place(client, BTC_ORDER).json()["position_id"]
    url = f"/api/v1/positions/{position_id}/close"

    refused = client.post(url, {"type": "market", "size": "0.05005"}, format="json")
    rounded = client.post(url, {"type": "market", "size": "0.05005", "rounding": "down"}, format="json")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "size_off_step"
    assert rounded.status_code == 201
    assert rounded.json()["filled_size"] == "0.05"


def test_a_replayed_client_order_id_returns_the_first_order(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)

    first = place(client, {**BTC_ORDER, "client_order_id": "abc-1"})
    again = place(client, {**BTC_ORDER, "client_order_id": "abc-1"})

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.filter(user=trader).count() == 1
    assert user_balances(user=trader).margin == Decimal("1000")


def test_idempotency_key_replays_and_refuses_a_different_body(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)

    first = place(client, BTC_ORDER, **{"Idempotency-Key": "k-1"})
    again = place(client, BTC_ORDER, **{"Idempotency-Key": "k-1"})
    other = place(client, {**BTC_ORDER, "leverage": "5"}, **{"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert Order.objects.filter(user=trader).count() == 1


def test_preview_answers_venue_margin_fees_and_liquidation_and_changes_nothing(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)

    response = client.post("/api/v1/orders/preview", {**BTC_ORDER, "stop_loss": "60000"}, format="json")

    assert response.status_code == 200
    plan = response.json()
    assert plan["ok"] is True
    assert (plan["provider"], plan["margin"], plan["fees"], plan["size"]) == ("paper", "1000", "5", "0.1562")
    # 90 % of 1,000 USDC lost over 0.1562 BTC: 5,761.84... below the entry
    assert Decimal(plan["liquidation_price"]).quantize(Decimal("0.01")) == Decimal("58238.16")
    assert plan["rounding"]["size"]["size"] == "0.1562"
    assert Order.objects.count() == 0
    assert user_balances(user=trader).available == Decimal("10000")


def test_preview_reports_a_rejection_code_instead_of_failing(trader, drive):
    drive(BTCUSD="64000")

    plan = (
        bearer_client(trader)
        .post("/api/v1/orders/preview", {**BTC_ORDER, "stop_loss": "50000"}, format="json")
        .json()
    )

    assert plan["ok"] is False
    assert plan["reject_code"] == "stop_beyond_liquidation"


def test_a_rejected_preview_matches_its_documented_schema(trader, drive):
    """Found by fuzzing the schema: a rejection has no entry_price, margin or fees, which the
    document listed as required."""
    drive(BTCUSD="64000")

    response = bearer_client(trader).post(
        "/api/v1/orders/preview", {**BTC_ORDER, "type": "market", "price": "64000"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["reject_code"] == "limit_price_required"
    assert_documented(response, path="/api/v1/orders/preview", method="post")


def test_an_order_with_a_percent_trailing_stop_matches_its_documented_schema(trader, drive):
    """Found by fuzzing the schema: a trailing stop carries percent or distance, not both."""
    drive(BTCUSD="64000")

    response = place(bearer_client(trader), {**BTC_ORDER, "trailing_stop": {"percent": "2"}})

    assert response.status_code == 201, response.content
    assert response.json()["trailing_stop"] == {"percent": "2"}
    assert_documented(response, path="/api/v1/orders", method="post")


def test_cancelling_a_resting_limit_order_releases_its_collateral(trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    order = place(client, {**BTC_ORDER, "type": "limit", "price": "60000"}).json()
    assert order["status"] == "open"
    assert user_balances(user=trader).available == Decimal("8995")

    cancelled = client.delete(f"/api/v1/orders/{order['id']}")

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert user_balances(user=trader).available == Decimal("10000")
    assert client.delete(f"/api/v1/orders/{order['id']}").json()["error"]["code"] == "order_not_cancellable"


def test_orders_list_filters_by_status_and_symbol(trader, drive):
    drive(BTCUSD="64000", ETHUSD="3000")
    client = bearer_client(trader)
    place(client, BTC_ORDER)
    place(client, {**BTC_ORDER, "symbol": "ETHUSD", "type": "limit", "price": "2500"})

    filled = client.get("/api/v1/orders?status=filled").json()["results"]
    eth = client.get("/api/v1/orders?symbol=ethusd").json()["results"]

    assert [o["symbol"] for o in filled] == ["BTCUSD"]
    assert [(o["symbol"], o["status"]) for o in eth] == [("ETHUSD", "open")]
    assert client.get("/api/v1/orders?status=nope").status_code == 400


def test_another_users_order_and_position_are_not_found(trader, drive, django_user_model):
    drive(BTCUSD="64000")
    order = place(bearer_client(trader), BTC_ORDER).json()
    stranger = bearer_client(django_user_model.objects.create_user(email="stranger@example.com"))

    assert stranger.get(f"/api/v1/orders/{order['id']}").status_code == 404
    assert stranger.get(f"/api/v1/positions/{order['position_id']}").status_code == 404
    closing = stranger.post(f"/api/v1/positions/{order['position_id']}/close", {}, format="json")
    assert closing.status_code == 404


def test_trading_needs_a_signed_in_user(api_client):
    assert api_client.post("/api/v1/orders", BTC_ORDER, format="json").status_code == 401
    assert api_client.get("/api/v1/account").status_code == 401
