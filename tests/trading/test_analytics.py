"""``GET /analytics``: a trader's results from real trades on the paper venue, over a period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conftest import bearer_client
from tests.accounts.factories import UserFactory
from trading.models import Fill, Position

pytestmark = pytest.mark.django_db


def place(client: Any, symbol: str, side: str, collateral: str, leverage: str) -> dict[str, Any]:
    body = {"symbol": symbol, "side": side, "type": "market", "collateral": collateral, "leverage": leverage}
    response = client.post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def close(client: Any, position_id: str) -> dict[str, Any]:
    response = client.post(f"/api/v1/positions/{position_id}/close", {"type": "market"}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def traded(trader, drive) -> dict[str, str]:
    """Three round trips (two won, one lost) and one position left open.

    BTC long 0.1562 @ 64,000 -> 65,000: +156.2, fees 5 + 5.0765
    ETH short 0.833 @ 3,000 -> 3,100: -83.3, fees 1.25 + 1.29115
    ETH long 0.064 @ 3,100 -> 3,200: +6.4, fees 0.1 + 0.1024
    BTC long 0.003 @ 65,000, open, marked at 66,000: +3 unrealized, fee 0.1
    """
    client = bearer_client(trader)
    drive(BTCUSD="64000", ETHUSD="3000")
    btc = place(client, "BTCUSD", "long", "1000", "10")["position_id"]
    eth_short = place(client, "ETHUSD", "short", "500", "5")["position_id"]
    drive(BTCUSD="65000", ETHUSD="3100")
    close(client, btc)
    close(client, eth_short)
    eth_long = place(client, "ETHUSD", "long", "100", "2")["position_id"]
    place(client, "BTCUSD", "long", "100", "2")
    drive(ETHUSD="3200")
    close(client, eth_long)
    drive(BTCUSD="66000")
    return {"btc": btc, "eth_short": eth_short, "eth_long": eth_long}


def test_analytics_sums_the_trades_of_the_period_and_marks_what_is_open(trader, traded):
    response = bearer_client(trader).get("/api/v1/analytics")

    assert response.status_code == 200, response.json()
    body = response.json()
    period = body.pop("period")
    assert body == {
        "currency": "USDC",
        "realized_pnl": "79.3",  # 156.2 - 83.3 + 6.4
        "unrealized_pnl": "3",
        "fees": "12.92005",  # 5 + 1.25 + 5.0765 + 1.29115 + 0.1 + 0.1 + 0.1024
        # 9,996.8 + 2,499 + 10,153 + 2,582.3 + 198.4 + 195 + 204.8
        "volume": "25829.3",
        "trades": 7,
        "closed_positions": 3,
        "win_rate": "0.6667",
        "average_win": "81.3",  # (156.2 + 6.4) / 2
        "average_loss": "-83.3",
        "best_trade": {
            "position_id": traded["btc"],
            "symbol": "BTCUSD",
            "side": "long",
            "realized_pnl": "156.2",
            "closed_at": body["best_trade"]["closed_at"],
        },
        "worst_trade": {
            "position_id": traded["eth_short"],
            "symbol": "ETHUSD",
            "side": "short",
            "realized_pnl": "-83.3",
            "closed_at": body["worst_trade"]["closed_at"],
        },
        "per_symbol": [
            {
                "symbol": "BTCUSD",
                "realized_pnl": "156.2",
                "volume": "20344.8",
                "trades": 3,
                "closed_positions": 1,
                "win_rate": "1",
            },
            {
                "symbol": "ETHUSD",
                "realized_pnl": "-76.9",
                "volume": "5484.5",
                "trades": 4,
                "closed_positions": 2,
                "win_rate": "0.5",
            },
        ],
    }
    assert body["best_trade"]["closed_at"] is not None
    assert set(period) == {"from", "to"}


def test_the_default_period_is_the_last_30_days(trader, traded):
    period = bearer_client(trader).get("/api/v1/analytics").json()["period"]

    start, end = (timezone.datetime.fromisoformat(period[k]) for k in ("from", "to"))
    assert end - start == timedelta(days=30)
    assert abs(timezone.now() - end) < timedelta(minutes=1)


def _move_back(position_id: str, days: int) -> None:
    """As if the position had been opened and closed ``days`` ago."""
    then = timezone.now() - timedelta(days=days)
    Fill.objects.filter(position_id=position_id).update(created_at=then)
    Position.objects.filter(pk=position_id).update(created_at=then, closed_at=then)


def test_a_period_counts_only_the_fills_and_closes_inside_it(trader, traded):
    _move_back(traded["btc"], days=10)
    client = bearer_client(trader)

    week = client.get("/api/v1/analytics", {"period": "7d"}).json()
    month = client.get("/api/v1/analytics", {"period": "30d"}).json()

    assert (week["realized_pnl"], week["trades"], week["closed_positions"]) == ("-76.9", 5, 2)
    assert week["best_trade"]["position_id"] == traded["eth_long"]
    assert [s["symbol"] for s in week["per_symbol"]] == ["BTCUSD", "ETHUSD"]
    assert week["per_symbol"][0] == {
        "symbol": "BTCUSD",
        "realized_pnl": "0",
        "volume": "195",
        "trades": 1,
        "closed_positions": 0,
        "win_rate": None,
    }
    assert (month["realized_pnl"], month["trades"], month["closed_positions"]) == ("79.3", 7, 3)


def test_explicit_from_and_to_pick_a_window(trader, traded):
    _move_back(traded["btc"], days=10)
    now = timezone.now()
    window = {
        "from": (now - timedelta(days=11)).isoformat(),
        "to": (now - timedelta(days=9)).isoformat(),
    }

    body = bearer_client(trader).get("/api/v1/analytics", window).json()

    assert (body["realized_pnl"], body["trades"], body["closed_positions"]) == ("156.2", 2, 1)
    assert (body["win_rate"], body["average_win"], body["average_loss"]) == ("1", "156.2", None)
    assert body["worst_trade"]["position_id"] == traded["btc"]
    assert body["unrealized_pnl"] == "3"  # what is open is marked now, whatever the window


def test_a_trader_with_no_trades_gets_zeros_and_nulls(trader, paper_market):
    body = bearer_client(trader).get("/api/v1/analytics", {"period": "all"}).json()

    assert body["period"]["from"] is None
    assert (body["realized_pnl"], body["volume"], body["fees"], body["trades"]) == ("0", "0", "0", 0)
    assert body["closed_positions"] == 0
    assert body["win_rate"] is body["best_trade"] is body["worst_trade"] is body["average_win"] is None
    assert body["per_symbol"] == []


def test_analytics_shows_only_the_callers_own_trades(traded, paper_market):
    other = UserFactory()

    body = bearer_client(other).get("/api/v1/analytics").json()

    assert (body["trades"], body["closed_positions"], body["unrealized_pnl"]) == (0, 0, "0")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"period": "1y"}, "period"),
        ({"from": "yesterday"}, "from"),
        ({"period": "7d", "from": "2025-01-01T00:00:00Z"}, "period"),
        ({"from": "2025-02-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}, "from"),
    ],
)
def test_a_bad_period_is_a_validation_error(trader, query, field):
    response = bearer_client(trader).get("/api/v1/analytics", query)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_analytics_needs_a_signed_in_trader(api_client):
    response = api_client.get("/api/v1/analytics")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
