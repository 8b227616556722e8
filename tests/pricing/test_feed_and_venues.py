"""The price feed over the demo market, and the same public endpoints serving a real venue's
data once an operator points the platform at it (a local server speaking Lighter's format)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django_redis import get_redis_connection
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from demo.services import demo_market_ensure
from pricing.feed import HEARTBEAT_KEY, PriceFeed
from pricing.models import TradingPair
from providers import registry
from providers.models import RoutingRule
from providers.services.configs import provider_config_create

pytestmark = pytest.mark.django_db(transaction=True)  # config changes propagate after commit

LIGHTER_FIXTURES = Path(__file__).resolve().parents[1] / "contract" / "lighter" / "fixtures"


@pytest.fixture(autouse=True)
def _clean_prices(redis_conn):
    def clean() -> None:
        for pattern in ("marqetfi:price:*", "marqetfi:paper:*", "marqetfi:breaker:*", HEARTBEAT_KEY):
            for key in redis_conn.scan_iter(pattern):
                redis_conn.delete(key)

    clean()
    registry.reset_cache()
    yield
    clean()
    registry.reset_cache()


def test_one_feed_round_prices_every_demo_pair_and_reaches_the_price_stream(api_client, stream_listener):
    pairs = demo_market_ensure()
    assert pairs >= 20
    stream_listener.subscribe("prices:BTCUSD")

    ticks = PriceFeed().run_once()

    assert ticks == TradingPair.objects.filter(active=True).count()
    message = stream_listener.receive()
    assert message["symbol"] == "BTCUSD" and Decimal(message["bid"]) < Decimal(message["ask"])
    assert get_redis_connection("default").get(HEARTBEAT_KEY) is not None
    listed = api_client.get("/api/v1/pairs?limit=100").json()["results"]
    symbols = [p["symbol"] for p in listed]
    assert {"BTCUSD", "ETHUSD", "EURUSD", "XAUUSD", "SPX"} <= set(symbols)
    prices = api_client.get(f"/api/v1/prices?symbols={','.join(symbols[:30])}").json()
    assert {p["provider"] for p in prices["prices"]} == {"paper"}
    assert prices["errors"] == {}


def test_paper_prices_move_between_rounds(api_client):
    demo_market_ensure()
    PriceFeed().run_once()
    first = api_client.get("/api/v1/prices/BTCUSD").json()["mid"]
    seen = {first}
    for _ in range(3):
        time.sleep(1.05)
        PriceFeed().run_once()
        seen.add(api_client.get("/api/v1/prices/BTCUSD").json()["mid"])
    assert len(seen) > 1, "the paper walk moves over time"


def test_seed_demo_is_idempotent_and_prints_the_market(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-Password-123")
    call_command("seed_demo")
    call_command("seed_demo")
    assert "pairs on the paper venue" in capsys.readouterr().out
    assert RoutingRule.objects.filter(match="category").count() == 4


def serve_lighter(server: HTTPServer) -> None:
    def fixture(name: str) -> str:
        return (LIGHTER_FIXTURES / name).read_text()

    server.expect_request("/api/v1/orderBookDetails").respond_with_data(
        fixture("order_book_details.json"), content_type="application/json"
    )
    server.expect_request("/api/v1/orderBooks").respond_with_data(
        fixture("order_books.json"), content_type="application/json"
    )

    def book(request: Request) -> Response:
        return Response(
            fixture(f"order_book_orders_{request.args['market_id']}.json"), content_type="application/json"
        )

    server.expect_request("/api/v1/orderBookOrders").respond_with_handler(book)


def test_pointing_the_platform_at_lighter_serves_its_pairs_and_prices(api_client, httpserver, staff_user):
    demo_market_ensure()
    serve_lighter(httpserver)
    provider_config_create(
        name="lighter",
        values={
            "base_url": httpserver.url_for("/").rstrip("/"),
            "account_index": "281",
            "api_key_index": "3",
        },
        secrets={"api_key_private_key": "0x" + "11" * 40},
        actor=staff_user,
    )
    call_command("sync_pairs", "--provider", "lighter")
    listed = api_client.get("/api/v1/pairs?provider=lighter").json()["results"]
    assert {p["symbol"] for p in listed} >= {"BTCUSD", "ETHUSD"}
    assert {p["provider"] for p in listed} == {"lighter"}

    book = json.loads((LIGHTER_FIXTURES / "order_book_orders_0.json").read_text())
    price = api_client.get("/api/v1/prices/ETHUSD").json()
    assert price["provider"] == "lighter"
    assert Decimal(price["ask"]) == Decimal(book["asks"][0]["price"])
    assert any(request.path == "/api/v1/orderBookOrders" for request, _ in httpserver.log)
    forex = api_client.get("/api/v1/prices/EURUSD").json()
    assert forex["provider"] == "paper", "Ostium is not configured: forex stays on paper"


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        email="ops2@marqetfi.local", password="x", is_staff=True, is_superuser=True
    )
