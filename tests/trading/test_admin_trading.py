"""Operators and trading: platform figures, risk limits (API and Django admin), positions across
users, and the read-only admin pages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from conftest import bearer_client
from ledger.checks import ledger_check
from ledger.selectors import user_balances
from ledger.services import balance_adjust
from marqetfi.core.models import AuditEntry
from tests.accounts.factories import UserFactory
from trading.models import Fill, Order, Position, ProtectiveOrder, RiskLimit
from trading.services.fills import close_fill_record
from trading.services.positions import position_lock

pytestmark = pytest.mark.django_db

BTC_ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "1000", "leverage": "10"}


def place(client: Any, **changes: str) -> Any:
    return client.post("/api/v1/orders", {**BTC_ORDER, **changes}, format="json")


def liquidate(position_id: str, price: str) -> None:
    """Settle the whole position as a liquidation at ``price`` (what the risk engine does)."""
    with transaction.atomic():
        position = position_lock(position_id=position_id)
        close_fill_record(
            position=position,
            order=None,
            size=position.size,
            price=Decimal(price),
            kind=Fill.Kind.LIQUIDATION,
        )


@pytest.fixture
def ops(staff) -> Any:
    return bearer_client(staff)


@pytest.fixture
def second_trader(staff) -> Any:
    user: Any = UserFactory()
    balance_adjust(user=user, amount=Decimal("5000"), reason="test funding", actor=staff)
    return user


@pytest.fixture
def book(trader, second_trader, drive) -> dict[str, str]:
    """trader: BTC long closed at +156.2, ETH short liquidated; second_trader: BTC long open and
    margin-called.

    Fills: BTC open 9,996.8 (fee 5) and close 10,153 (fee 5.0765); ETH open 0.833 @ 3,000 = 2,499
    (fee 1.25) liquidated at 3,540 = 2,948.82 (-449.82, fee 1.47441 from the 50.18 left);
    second BTC open 0.0781 @ 64,000 = 4,998.4 (fee 2.5).
    """
    client, other = bearer_client(trader), bearer_client(second_trader)
    drive(BTCUSD="64000", ETHUSD="3000")
    closed = place(client).json()["position_id"]
    liquidated = place(client, symbol="ETHUSD", side="short", collateral="500", leverage="5").json()[
        "position_id"
    ]
    margin_called = place(other, collateral="500").json()["position_id"]
    drive(BTCUSD="65000")
    client.post(f"/api/v1/positions/{closed}/close", {"type": "market"}, format="json")
    liquidate(liquidated, "3540")
    Position.objects.filter(pk=margin_called).update(margin_called_at=timezone.now())
    return {"closed": closed, "liquidated": liquidated, "margin_called": margin_called}


# --- platform figures ---------------------------------------------------------------------------


def test_admin_analytics_has_the_trading_figures_of_the_platform(ops, book, trader, second_trader):
    response = ops.get("/api/v1/admin/analytics")

    assert response.status_code == 200, response.json()
    trading = response.json()["trading"]
    assert trading["currency"] == "USDC"
    assert trading["now"] == {
        "open_positions": 1,
        "open_interest": {
            "total": "4998.4",
            "by_category": {"crypto": "4998.4"},
            "by_venue": {"paper": "4998.4"},
        },
        "fees_account_balance": "15.30091",  # 5 + 1.25 + 2.5 + 5.0765 + 1.47441
    }
    day = trading["24h"]
    assert set(day["period"]) == {"from", "to"}
    assert {k: v for k, v in day.items() if k != "period"} == {
        "volume": "30596.02",  # 9,996.8 + 2,499 + 4,998.4 + 10,153 + 2,948.82
        "fees": "15.30091",
        "fees_posted": "15.30091",
        "realized_pnl": "-293.62",  # 156.2 - 449.82
        "trades": 5,
        "orders_by_status": {
            "pending": 0,
            "open": 0,
            "partially_filled": 0,
            "filled": 4,
            "cancelled": 0,
            "rejected": 0,
            "expired": 0,
            "unknown": 0,
        },
        "traders_active": 2,
        "liquidations": 1,
        "margin_calls": 1,
    }
    assert trading["30d"]["volume"] == "30596.02"


def test_admin_figures_leave_out_what_happened_before_the_window(ops, book):
    long_ago = timezone.now() - timezone.timedelta(days=2)
    Fill.objects.update(created_at=long_ago)
    Position.objects.exclude(status="open").update(closed_at=long_ago)
    Position.objects.filter(margin_called_at__isnull=False).update(margin_called_at=long_ago)

    trading = ops.get("/api/v1/admin/analytics").json()["trading"]

    day, month = trading["24h"], trading["30d"]
    assert (day["volume"], day["trades"], day["liquidations"], day["margin_calls"]) == ("0", 0, 0, 0)
    assert (month["volume"], month["trades"], month["liquidations"], month["margin_calls"]) == (
        "30596.02",
        5,
        1,
        1,
    )


# --- risk limits: API -------------------------------------------------------------------------

RISK_ENDPOINTS = [
    ("get", "/api/v1/admin/risk-limits", None),
    ("post", "/api/v1/admin/risk-limits", {"symbol": "BTCUSD", "max_leverage": "5"}),
    ("get", "/api/v1/admin/risk-limits/{id}", None),
    ("patch", "/api/v1/admin/risk-limits/{id}", {"max_leverage": "3"}),
    ("delete", "/api/v1/admin/risk-limits/{id}", None),
    ("get", "/api/v1/admin/positions", None),
]


@pytest.mark.parametrize(("method", "path", "body"), RISK_ENDPOINTS)
def test_risk_limits_and_positions_are_for_operators_only(api_client, trader, method, path, body):
    limit = RiskLimit.objects.create(symbol="ETHUSD", max_leverage=Decimal(10))
    url = path.format(id=limit.pk)

    anonymous = getattr(api_client, method)(url, body, format="json")
    refused = getattr(bearer_client(trader), method)(url, body, format="json")

    assert anonymous.status_code == 401
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert list(RiskLimit.objects.values_list("symbol", "max_leverage")) == [("ETHUSD", Decimal(10))]
    assert not AuditEntry.objects.filter(target_type="risk_limit").exists()


def test_operator_creates_reads_changes_and_deletes_a_risk_limit_each_change_audited(
    ops, staff, trader, paper_market
):
    created = ops.post(
        "/api/v1/admin/risk-limits",
        {"user_id": str(trader.pk), "symbol": "btcusd", "max_leverage": "5", "note": "new account"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    limit_id = body["id"]
    assert {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")} == {
        "user_id": str(trader.pk),
        "user_email": trader.email,
        "symbol": "BTCUSD",
        "max_leverage": "5",
        "max_position_notional": None,
        "max_total_notional": None,
        "max_open_positions": None,
        "liquidation_level": None,
        "note": "new account",
    }
    url = f"/api/v1/admin/risk-limits/{limit_id}"
    assert ops.get(url).json() == body
    assert [r["id"] for r in ops.get("/api/v1/admin/risk-limits", {"user": trader.pk}).json()["results"]] == [
        limit_id
    ]

    changed = ops.patch(url, {"max_leverage": "3", "liquidation_level": "0.2"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["max_leverage"], changed.json()["liquidation_level"]) == ("3", "0.2")
    assert ops.delete(url).status_code == 204
    assert ops.get(url).status_code == 404
    assert ops.get(url).json()["error"]["code"] == "risk_limit_not_found"

    audit = list(AuditEntry.objects.filter(target_type="risk_limit").order_by("created_at"))
    assert [a.action for a in audit] == ["risk_limit.create", "risk_limit.update", "risk_limit.delete"]
    assert {a.target_id for a in audit} == {limit_id}
    assert all(a.actor_id == staff.pk for a in audit)
    assert audit[1].changes["before"]["max_leverage"] == "5"
    assert audit[1].changes["after"]["max_leverage"] == "3"
    assert audit[2].changes["liquidation_level"] == "0.2"


def test_a_second_limit_for_the_same_scope_is_a_conflict(ops, paper_market):
    first = ops.post("/api/v1/admin/risk-limits", {"max_leverage": "20"}, format="json")
    again = ops.post("/api/v1/admin/risk-limits", {"max_open_positions": 3}, format="json")
    other = ops.post("/api/v1/admin/risk-limits", {"symbol": "BTCUSD", "max_leverage": "5"}, format="json")
    moved = ops.patch(f"/api/v1/admin/risk-limits/{other.json()['id']}", {"symbol": ""}, format="json")

    assert first.status_code == 201 and other.status_code == 201
    assert again.status_code == moved.status_code == 409
    assert again.json()["error"]["code"] == "risk_limit_exists"
    assert again.json()["error"]["details"] == {"user_id": None, "symbol": ""}
    assert RiskLimit.objects.count() == 2
    assert AuditEntry.objects.filter(action="risk_limit.create").count() == 2


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"max_leverage": "0.5"}, "invalid_risk_limit", "max_leverage"),
        ({"liquidation_level": "1"}, "invalid_risk_limit", "liquidation_level"),
        ({"liquidation_level": "0"}, "validation_error", "liquidation_level"),
        ({"symbol": "NOPEUSD", "max_leverage": "5"}, "invalid_risk_limit", "symbol"),
        ({"note": "nothing limited"}, "invalid_risk_limit", "non_field_errors"),
        ({"max_leverage": 5.5}, "validation_error", "max_leverage"),
        ({"user_id": "not-a-user", "max_leverage": "5"}, "validation_error", "user_id"),
    ],
)
def test_an_invalid_risk_limit_is_refused_with_the_field_at_fault(ops, paper_market, body, code, field):
    response = ops.post("/api/v1/admin/risk-limits", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert field in response.json()["error"]["details"]
    assert not RiskLimit.objects.exists()
    assert not AuditEntry.objects.filter(target_type="risk_limit").exists()


def test_a_limit_created_by_an_operator_rejects_the_next_order_above_it(ops, trader, second_trader, drive):
    drive(BTCUSD="64000")
    ops.post(
        "/api/v1/admin/risk-limits",
        {"user_id": str(trader.pk), "symbol": "BTCUSD", "max_leverage": "5"},
        format="json",
    )

    refused = place(bearer_client(trader))
    others = place(bearer_client(second_trader), collateral="100")
    within = place(bearer_client(trader), leverage="5")

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "leverage_limit_exceeded"
    assert Decimal(refused.json()["error"]["details"]["max_leverage"]) == 5
    assert others.status_code == 201
    assert within.status_code == 201


# --- positions across users -------------------------------------------------------------------


def _listed(ops: Any, **query: Any) -> list[str]:
    response = ops.get("/api/v1/admin/positions", query)
    assert response.status_code == 200, response.json()
    return [p["id"] for p in response.json()["results"]]


def test_operators_list_positions_of_every_user_with_filters(ops, book, trader, second_trader):
    everything = ops.get("/api/v1/admin/positions").json()["results"]

    assert {p["id"] for p in everything} == set(book.values())
    margin_called = next(p for p in everything if p["id"] == book["margin_called"])
    assert margin_called["user_email"] == second_trader.email
    assert margin_called["margin_called_at"] is not None
    assert (margin_called["mark_price"], margin_called["unrealized_pnl"]) == ("65000", "78.1")
    assert (margin_called["liquidation_level"], margin_called["margin_call_level"]) == ("0.1", "0.5")
    assert _listed(ops, status="open") == [book["margin_called"]]
    assert _listed(ops, status="liquidated") == [book["liquidated"]]
    assert set(_listed(ops, user=trader.pk)) == {book["closed"], book["liquidated"]}
    assert set(_listed(ops, symbol="btcusd")) == {book["closed"], book["margin_called"]}
    assert _listed(ops, margin_called="true") == [book["margin_called"]]
    assert set(_listed(ops, margin_called="false")) == {book["closed"], book["liquidated"]}
    assert set(_listed(ops, breaches="true")) == {book["liquidated"], book["margin_called"]}


def test_a_bad_position_filter_is_a_validation_error(ops):
    response = ops.get("/api/v1/admin/positions", {"status": "gone", "user": "nobody"})

    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"status", "user"}


# --- Django admin -----------------------------------------------------------------------------


@pytest.fixture
def operator_client(client, django_user_model) -> Any:
    operator = django_user_model.objects.create_superuser(email="ops@marqetfi.local", password="ops-Pass-1")
    client.force_login(operator)
    client.operator = operator
    return client


def test_every_trading_changelist_loads_for_an_operator(operator_client, book):
    position = Position.objects.get(pk=book["margin_called"])
    ProtectiveOrder.objects.create(
        user=position.user,
        position=position,
        symbol=position.symbol,
        side=position.side,
        kind=ProtectiveOrder.Kind.STOP_LOSS,
        trigger_price=Decimal("60000"),
    )
    RiskLimit.objects.create(symbol="BTCUSD", max_leverage=Decimal(5))

    for model in ("order", "position", "fill", "protectiveorder", "risklimit"):
        page = operator_client.get(reverse(f"admin:trading_{model}_changelist"))
        assert page.status_code == 200, model
    detail = operator_client.get(reverse("admin:trading_position_change", args=[position.pk]))
    assert detail.status_code == 200
    assert "60000" in detail.content.decode()


def test_the_breaches_filter_shows_margin_called_and_liquidated_positions(operator_client, book):
    page = operator_client.get(reverse("admin:trading_position_changelist"), {"breach": "any"})

    html = page.content.decode()
    assert page.status_code == 200
    assert book["liquidated"] in html and book["margin_called"] in html
    assert book["closed"] not in html


def test_orders_positions_and_fills_cannot_be_edited_in_the_admin(operator_client, book):
    order = Position.objects.get(pk=book["closed"]).orders.first()
    assert order is not None
    order_id = order.pk

    assert operator_client.get(reverse("admin:trading_order_add")).status_code == 403
    change = operator_client.post(
        reverse("admin:trading_order_change", args=[order_id]), {"status": "cancelled"}
    )
    assert change.status_code == 403
    delete = operator_client.post(
        reverse("admin:trading_position_delete", args=[book["closed"]]), {"post": "yes"}
    )
    assert delete.status_code == 403
    assert Position.objects.filter(pk=book["closed"]).exists()
    index = operator_client.get(reverse("admin:index")).content.decode()
    assert "/trading/risklimit/" in index
    assert "idempotentrequest" not in index


def _limit_form(**values: Any) -> dict[str, Any]:
    fields = ("user", "symbol", "max_leverage", "max_position_notional", "max_total_notional")
    blank = dict.fromkeys((*fields, "max_open_positions", "liquidation_level", "note"), "")
    return {**blank, **values}


def test_risk_limits_saved_in_the_admin_go_through_the_audited_service(operator_client, trader, paper_market):
    add = operator_client.post(
        reverse("admin:trading_risklimit_add"), _limit_form(user=trader.pk, symbol="ethusd", max_leverage="4")
    )
    assert add.status_code == 302, add.content.decode()[:2000]
    limit = RiskLimit.objects.get()
    assert (limit.user_id, limit.symbol, limit.max_leverage) == (trader.pk, "ETHUSD", Decimal(4))

    change = operator_client.post(
        reverse("admin:trading_risklimit_change", args=[limit.pk]),
        _limit_form(user=trader.pk, symbol="ETHUSD", max_leverage="2"),
    )
    assert change.status_code == 302
    delete = operator_client.post(reverse("admin:trading_risklimit_delete", args=[limit.pk]), {"post": "yes"})
    assert delete.status_code == 302
    assert not RiskLimit.objects.exists()
    audit = AuditEntry.objects.filter(target_type="risk_limit").order_by("created_at")
    assert [(a.action, a.actor_id) for a in audit] == [
        ("risk_limit.create", operator_client.operator.pk),
        ("risk_limit.update", operator_client.operator.pk),
        ("risk_limit.delete", operator_client.operator.pk),
    ]


def test_the_admin_form_refuses_an_invalid_or_duplicate_risk_limit(operator_client, paper_market):
    RiskLimit.objects.create(symbol="BTCUSD", max_leverage=Decimal(5))
    url = reverse("admin:trading_risklimit_add")

    duplicate = operator_client.post(url, _limit_form(symbol="BTCUSD", max_leverage="3"))
    too_low = operator_client.post(url, _limit_form(symbol="ETHUSD", liquidation_level="1.5"))

    assert duplicate.status_code == too_low.status_code == 200  # the form again, with errors
    assert "exists already" in duplicate.content.decode()
    assert "strictly between 0 and 1" in too_low.content.decode()
    assert RiskLimit.objects.count() == 1
    assert not AuditEntry.objects.filter(target_type="risk_limit").exists()


def _admin_action(client: Any, model: str, action: str, rows: list[Any]) -> Any:
    return client.post(
        reverse(f"admin:trading_{model}_changelist"),
        {"action": action, "_selected_action": [str(row.pk) for row in rows]},
        follow=True,
    )


def test_an_operator_closes_a_position_at_market_and_it_is_audited(operator_client, book, trader, drive):
    drive(BTCUSD="64500")
    position = Position.objects.get(pk=book["margin_called"])
    closed_already = Position.objects.get(pk=book["closed"])

    response = _admin_action(operator_client, "position", "close_positions", [position, closed_already])

    assert response.status_code == 200
    position.refresh_from_db()
    assert position.status == "closed"
    assert position.orders.get(purpose="close").closed_by == "operator"
    assert AuditEntry.objects.filter(
        action="position.close", target_id=str(position.pk), actor=operator_client.operator
    ).exists()
    assert not AuditEntry.objects.filter(action="position.close", target_id=str(closed_already.pk)).exists()
    assert ledger_check() == []


def test_an_operator_cancels_a_resting_order_and_its_collateral_goes_back(operator_client, trader, drive):
    drive(BTCUSD="64000")
    client = bearer_client(trader)
    resting = client.post(
        "/api/v1/orders", {**BTC_ORDER, "type": "limit", "price": "50000"}, format="json"
    ).json()
    before = user_balances(user=trader).available
    order = Order.objects.get(pk=resting["id"])

    _admin_action(operator_client, "order", "cancel_orders", [order])

    order.refresh_from_db()
    assert order.status == "cancelled"
    assert user_balances(user=trader).available == before + order.collateral + order.fee_reserved
    assert AuditEntry.objects.filter(action="order.cancel", target_id=str(order.pk)).exists()
    assert ledger_check() == []
