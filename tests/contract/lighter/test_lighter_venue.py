"""LighterVenue against a fake Lighter answering in Lighter's documented format.

Signing needs Lighter's native library (the lighter-sdk wheel). Where it is installed, the
order tests run the real signer and check the signed transaction the fake receives; where it
is not, they check the clear error. The tests with ``fake_signer`` replace the three signing
functions to check everything around them (sizing, prices, nonces, the sendTx form) anywhere.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import (
    MarketCategory,
    OrderType,
    Side,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
)
from providers.errors import ProviderError
from providers.venues.lighter import signer
from providers.venues.lighter.adapter import LighterVenue, chain_id_for, client_order_index

FIXTURES = Path(__file__).parent / "fixtures"
API = "/api/v1"
ACCOUNT = 281
KEY_INDEX = 3
# A throwaway key made with the library's GenerateAPIKey; registered nowhere.
PRIVATE_KEY = "0xfeebde38db4fcf843d83744b2b0c13a648c5b4e1e77636e451792ca4380f6428683c88303d4a8339"

MakeVenue = Callable[..., LighterVenue]
needs_signer = pytest.mark.skipif(not signer.signing_available(), reason="lighter-sdk is not installed")
without_signer = pytest.mark.skipif(signer.signing_available(), reason="lighter-sdk is installed here")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def requests_to(server: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in server.log if request.path == f"{API}/{path}"]


def form_of(request: Request) -> dict[str, str]:
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    return {name: values[0] for name, values in parse_qs(request.get_data(as_text=True)).items()}


def serve_markets(server: HTTPServer) -> None:
    server.expect_request(f"{API}/orderBookDetails", method="GET").respond_with_json(
        fixture("order_book_details.json")
    )


def serve_books(server: HTTPServer) -> None:
    def book(request: Request) -> Response:
        market_id = request.args["market_id"]
        assert request.args["limit"] == "1"
        body = (FIXTURES / f"order_book_orders_{market_id}.json").read_text()
        return Response(body, content_type="application/json")

    server.expect_request(f"{API}/orderBookOrders", method="GET").respond_with_handler(book)


def serve_send(server: HTTPServer) -> None:
    server.expect_request(
        f"{API}/nextNonce", method="GET", query_string={"account_index": "281", "api_key_index": "3"}
    ).respond_with_json(fixture("next_nonce.json"))
    server.expect_request(f"{API}/sendTx", method="POST").respond_with_json(fixture("send_tx.json"))


@pytest.fixture
def make_venue(httpserver: HTTPServer) -> Iterator[MakeVenue]:
    venues: list[LighterVenue] = []

    def make(base_url: str | None = None, **options: Any) -> LighterVenue:
        options.setdefault("timeout", "2")
        options.setdefault("backoff_seconds", "0.001")
        venue = LighterVenue(
            base_url=base_url or httpserver.url_for("/").rstrip("/"),
            account_index=str(ACCOUNT),
            api_key_index=str(KEY_INDEX),
            api_key_private_key=PRIVATE_KEY,
            **options,
        )
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        venue.close()


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[HTTPServer]:
    """Threaded, so that concurrent and still-sleeping handlers block no one."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def fake_signer(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stand-ins for the signing functions: record the arguments, return a readable tx_info."""
    calls: list[dict[str, Any]] = []

    def sign_create_order(**kwargs: Any) -> signer.SignedTx:
        calls.append({"tx": "create", **kwargs})
        fields = {k: v for k, v in kwargs.items() if k != "key"}
        return signer.SignedTx(tx_type=signer.TX_TYPE_CREATE_ORDER, tx_info=json.dumps(fields))

    def sign_cancel_order(**kwargs: Any) -> signer.SignedTx:
        calls.append({"tx": "cancel", **kwargs})
        fields = {k: v for k, v in kwargs.items() if k != "key"}
        return signer.SignedTx(tx_type=signer.TX_TYPE_CANCEL_ORDER, tx_info=json.dumps(fields))

    def create_auth_token(*, key: signer.ApiKey, deadline: int) -> str:
        calls.append({"tx": "auth", "key": key, "deadline": deadline})
        return f"{deadline}:{key.account_index}:{key.api_key_index}:c0ffee"

    monkeypatch.setattr(signer, "ensure_available", lambda: None)
    monkeypatch.setattr(signer, "sign_create_order", sign_create_order)
    monkeypatch.setattr(signer, "sign_cancel_order", sign_cancel_order)
    monkeypatch.setattr(signer, "create_auth_token", create_auth_token)
    return calls


def order_request(**overrides: Any) -> VenueOrderRequest:
    fields: dict[str, Any] = {
        "account_ref": str(ACCOUNT),
        "client_order_id": "order-market-1",
        "symbol": "ETHUSD",
        "side": Side.LONG,
        "type": OrderType.MARKET,
        "collateral": Decimal(100),
        "leverage": Decimal(5),
    }
    return VenueOrderRequest(**{**fields, **overrides})


# --- market data ----------------------------------------------------------------------


def test_markets_maps_active_perps_with_ticks_steps_and_limits(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    serve_markets(httpserver)

    markets = {market.symbol: market for market in make_venue().markets()}

    assert sorted(markets) == ["BTCUSD", "ETHUSD", "SOLUSD"]  # no inactive market, no spot
    eth, btc, sol = markets["ETHUSD"], markets["BTCUSD"], markets["SOLUSD"]
    assert (eth.venue_symbol, eth.category) == ("0", MarketCategory.CRYPTO)
    assert (eth.tick_size, eth.size_step) == (Decimal("0.01"), Decimal("0.0001"))
    assert (btc.tick_size, btc.size_step) == (Decimal("0.1"), Decimal("0.00001"))
    assert (sol.tick_size, sol.size_step) == (Decimal("0.001"), Decimal("0.001"))
    # 1e4 / min_initial_margin_fraction
    assert (eth.max_leverage, btc.max_leverage, sol.max_leverage) == (
        Decimal(25),
        Decimal(50),
        Decimal("30.03"),
    )
    # max(min_quote_amount, min_base_amount x last trade price), rounded up to the cent
    assert eth.min_collateral == Decimal("15.13")  # 0.0050 x 3024.66
    assert btc.min_collateral == Decimal("19.41")  # 0.00020 x 97012.5
    assert sol.min_collateral == Decimal("12.06")  # 0.050 x 241.117
    assert len(httpserver.log) == 1


def test_prices_read_one_book_per_market_and_leave_unknown_symbols_out(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    serve_markets(httpserver)
    serve_books(httpserver)
    venue = make_venue()

    quotes = venue.prices(symbols=["ETHUSD", "btcusd", "SOLUSD", "DOGEUSD", "OLDUSD"])

    assert sorted(quotes) == ["BTCUSD", "ETHUSD", "SOLUSD"]
    assert (quotes["ETHUSD"].bid, quotes["ETHUSD"].ask) == (Decimal("3024.12"), Decimal("3024.66"))
    assert (quotes["BTCUSD"].bid, quotes["BTCUSD"].ask) == (Decimal("97011.9"), Decimal("97013.4"))
    assert (quotes["SOLUSD"].bid, quotes["SOLUSD"].ask) == (Decimal("241.103"), Decimal("241.125"))
    assert quotes["ETHUSD"].ts.tzinfo is not None
    assert len(requests_to(httpserver, "orderBookDetails")) == 1
    assert sorted(r.args["market_id"] for r in requests_to(httpserver, "orderBookOrders")) == ["0", "1", "2"]

    venue.prices(symbols=["ETHUSD", "BTCUSD"])

    assert len(requests_to(httpserver, "orderBookDetails")) == 1  # the market table is kept
    assert len(httpserver.log) == 1 + 3 + 2


def test_prices_read_books_in_parallel_up_to_the_bound(
    threaded_server: HTTPServer, make_venue: MakeVenue
) -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow_book(request: Request) -> Response:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.1)
        with lock:
            running -= 1
        body = (FIXTURES / f"order_book_orders_{request.args['market_id']}.json").read_text()
        return Response(body, content_type="application/json")

    serve_markets(threaded_server)
    threaded_server.expect_request(f"{API}/orderBookOrders").respond_with_handler(slow_book)
    venue = make_venue(threaded_server.url_for("/").rstrip("/"), max_parallel=2)

    quotes = venue.prices(symbols=["ETHUSD", "BTCUSD", "SOLUSD"])

    threaded_server.clear()
    assert len(quotes) == 3
    assert peak == 2


def test_health_check_reads_the_order_books_once(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(f"{API}/orderBooks", method="GET").respond_with_json(
        fixture("order_books.json")
    )

    make_venue().health_check()

    assert len(httpserver.log) == 1


def test_a_failed_health_check_is_tried_once(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(f"{API}/orderBooks").respond_with_json({"code": 500}, status=503)

    with pytest.raises(ProviderError) as caught:
        make_venue().health_check()

    assert caught.value.retryable and caught.value.status_code == 503
    assert len(httpserver.log) == 1


# --- errors ---------------------------------------------------------------------------


def test_a_body_code_other_than_200_is_a_non_retryable_error(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(f"{API}/orderBookDetails").respond_with_json(
        fixture("error_invalid_param.json")
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().markets()

    error = caught.value
    assert error.provider == "lighter" and not error.retryable
    assert "code 20001" in error.message and "invalid param: market_id" in error.message
    assert error.response == fixture("error_invalid_param.json")
    assert len(httpserver.log) == 1


def test_a_400_answer_carries_lighter_message_and_is_not_retried(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(f"{API}/account").respond_with_json(
        fixture("error_account_not_found.json"), status=400
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().positions(account_ref="99999")

    error = caught.value
    assert error.status_code == 400 and not error.retryable
    assert "account not found" in error.message
    assert len(httpserver.log) == 1


def test_a_429_is_retried_after_retry_after(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_oneshot_request(f"{API}/orderBookDetails").respond_with_json(
        fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "0"}
    )
    serve_markets(httpserver)

    markets = make_venue().markets()

    assert len(markets) == 3
    assert len(httpserver.log) == 2


def test_a_persistent_429_ends_as_a_retryable_error(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(f"{API}/orderBookDetails").respond_with_json(
        fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "0"}
    )

    with pytest.raises(ProviderError) as caught:
        make_venue(max_attempts="3").markets()

    assert caught.value.retryable and caught.value.status_code == 429
    assert len(httpserver.log) == 3


def test_a_slow_answer_times_out_as_a_retryable_error(
    threaded_server: HTTPServer, make_venue: MakeVenue
) -> None:
    attempts = 0

    def too_slow(request: Request) -> Response:
        nonlocal attempts
        attempts += 1
        time.sleep(0.3)
        return Response(json.dumps(fixture("order_book_details.json")), content_type="application/json")

    threaded_server.expect_request(f"{API}/orderBookDetails").respond_with_handler(too_slow)
    venue = make_venue(threaded_server.url_for("/").rstrip("/"), timeout="0.1", max_attempts="2")

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        venue.markets()

    elapsed = time.monotonic() - started
    threaded_server.clear()
    assert caught.value.retryable and "timed out after 0.1 s" in caught.value.message
    # Two attempts cut at 0.1 s each, not two answers waited out (0.6 s): the bound leaves room
    # for a loaded machine.
    assert attempts == 2 and elapsed < 0.6


# --- account --------------------------------------------------------------------------


def test_positions_map_long_and_short_and_skip_flat_markets(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(
        f"{API}/account", method="GET", query_string={"by": "index", "value": "281"}
    ).respond_with_json(fixture("account.json"))

    positions = {p.symbol: p for p in make_venue().positions(account_ref="281")}

    assert sorted(positions) == ["BTCUSD", "ETHUSD"]
    eth, btc = positions["ETHUSD"], positions["BTCUSD"]
    assert (eth.venue_position_id, eth.side, eth.size, eth.entry_price) == (
        "0",
        Side.LONG,
        Decimal("0.5000"),
        Decimal("2980.40"),
    )
    assert eth.leverage == Decimal(5)  # initial margin fraction 20 %
    assert eth.collateral == Decimal("302.466")  # cross: position value / leverage
    assert eth.extra["margin_mode"] == "cross" and eth.extra["unrealized_pnl"] == "22.130000"
    assert (btc.venue_position_id, btc.side, btc.size, btc.leverage) == (
        "1",
        Side.SHORT,
        Decimal("0.01000"),
        Decimal(10),
    )
    assert btc.collateral == Decimal("97.500000")  # isolated: its allocated margin
    assert btc.extra["liquidation_price"] == "106210.3"


def test_an_account_ref_that_is_not_an_index_is_refused_without_calling_lighter(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_venue().positions(account_ref="0xdE78C900ffCAb39FC11Af7F4Ec3b20f3F9C2262D")

    assert caught.value.status_code == 400
    assert httpserver.log == []


def test_get_order_finds_a_filled_order_by_client_id_with_an_auth_token(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    httpserver.expect_request(
        f"{API}/accountActiveOrders", query_string={"account_index": "281"}
    ).respond_with_json(fixture("account_active_orders.json"))
    httpserver.expect_request(
        f"{API}/accountInactiveOrders", query_string={"account_index": "281", "limit": "100"}
    ).respond_with_json(fixture("account_inactive_orders.json"))
    venue = make_venue()

    order = venue.get_order(account_ref="281", client_order_id="order-filled-1")

    assert order == VenueOrder(
        venue_order_id=f"1:{client_order_index('order-filled-1')}",
        client_order_id="order-filled-1",
        status=VenueOrderStatus.FILLED,
        filled_size=Decimal("0.01000"),
        avg_fill_price=Decimal("97012.5"),
    )
    token = f"{fake_signer[0]['deadline']}:281:3:c0ffee"
    assert all(request.headers["Authorization"] == token for request, _ in httpserver.log)


def test_get_order_maps_partial_fills_rejections_and_absence(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    httpserver.expect_request(f"{API}/accountActiveOrders").respond_with_json(
        fixture("account_active_orders.json")
    )
    httpserver.expect_request(f"{API}/accountInactiveOrders").respond_with_json(
        fixture("account_inactive_orders.json")
    )
    venue = make_venue()

    resting = venue.get_order(account_ref="281", client_order_id="order-resting-1")
    rejected = venue.get_order(account_ref="281", client_order_id="order-rejected-1")
    unknown = venue.get_order(account_ref="281", client_order_id="order-never-sent")

    assert resting is not None and (resting.status, resting.filled_size) == (
        "partially_filled",
        Decimal("0.1"),
    )
    assert rejected is not None and rejected.status == "rejected"
    assert rejected.reject_reason == "canceled-margin-not-allowed"
    assert unknown is None
    assert len([call for call in fake_signer if call["tx"] == "auth"]) == 1  # the token is reused


def test_open_orders_are_the_active_orders_under_the_ids_get_order_gives(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    httpserver.expect_request(
        f"{API}/accountActiveOrders", query_string={"account_index": "281"}
    ).respond_with_json(fixture("account_active_orders.json"))
    httpserver.expect_request(f"{API}/accountInactiveOrders").respond_with_json(
        fixture("account_inactive_orders.json")
    )
    venue = make_venue()

    [resting] = venue.open_orders(account_ref="281")

    assert resting == VenueOrder(
        venue_order_id="0:158447448668375",
        client_order_id="158447448668375",
        status=VenueOrderStatus.PARTIALLY_FILLED,
        filled_size=Decimal("0.1000"),
        avg_fill_price=Decimal("2980.10"),
    )
    found = venue.get_order(account_ref="281", client_order_id="order-resting-1")
    assert found is not None and found.venue_order_id == resting.venue_order_id
    [request, _] = httpserver.log[0]
    assert request.headers["Authorization"] == f"{fake_signer[0]['deadline']}:281:3:c0ffee"


# --- orders ---------------------------------------------------------------------------


@without_signer
def test_without_the_signer_library_placing_an_order_is_a_clear_error_and_sends_nothing(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request())

    error = caught.value
    assert not error.retryable
    assert "order signing needs the lighter signer library" in error.message
    assert "pip install --no-deps lighter-sdk==1.1.8" in error.message
    assert httpserver.log == []


@needs_signer
def test_a_limit_order_is_signed_and_sent_as_a_create_order_transaction(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    serve_markets(httpserver)
    serve_send(httpserver)
    request = order_request(
        client_order_id="order-limit-1",
        symbol="BTCUSD",
        side=Side.SHORT,
        type=OrderType.LIMIT,
        collateral=Decimal(200),
        leverage=Decimal(10),
        price=Decimal("98000.05"),
    )

    placed = make_venue().place_order(order=request)

    index = client_order_index("order-limit-1")
    assert placed == VenueOrder(
        venue_order_id=f"1:{index}", client_order_id="order-limit-1", status=VenueOrderStatus.PENDING
    )
    (sent,) = requests_to(httpserver, "sendTx")
    form = form_of(sent)
    assert form["tx_type"] == "14"
    tx_info = json.loads(form["tx_info"])
    assert {k: tx_info[k] for k in ("AccountIndex", "ApiKeyIndex", "MarketIndex", "ClientOrderIndex")} == {
        "AccountIndex": 281,
        "ApiKeyIndex": 3,
        "MarketIndex": 1,
        "ClientOrderIndex": index,
    }
    # 2000 USD / 98000.05 = 0.0204081 BTC -> 2040 (5 decimals, down); ask price up to the tick
    assert (tx_info["BaseAmount"], tx_info["Price"], tx_info["IsAsk"]) == (2040, 980001, 1)
    assert (tx_info["Type"], tx_info["TimeInForce"], tx_info["ReduceOnly"]) == (0, 1, 0)
    assert tx_info["Nonce"] == 722
    assert tx_info["OrderExpiry"] > time.time() * 1000 + 27 * 24 * 3600 * 1000  # 28 days
    assert len(base64.b64decode(tx_info["Sig"])) == 80


def test_a_market_order_is_sized_at_the_best_ask_with_a_worst_price_and_sent(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_markets(httpserver)
    serve_books(httpserver)
    serve_send(httpserver)

    placed = make_venue().place_order(order=order_request())

    (call,) = fake_signer
    index = client_order_index("order-market-1")
    assert call["key"] == signer.ApiKey(
        account_index=281, api_key_index=3, private_key=PRIVATE_KEY, chain_id=304
    )
    # 500 USD / 3024.66 = 0.16530 ETH -> 1653; worst price 3024.66 x 1.01 = 3054.9066 -> 3054.91
    assert {k: call[k] for k in ("market_index", "client_order_index", "base_amount", "price", "is_ask")} == {
        "market_index": 0,
        "client_order_index": index,
        "base_amount": 1653,
        "price": 305491,
        "is_ask": False,
    }
    assert (call["order_type"], call["time_in_force"], call["order_expiry"], call["nonce"]) == (1, 0, 0, 722)
    assert [request.path.rsplit("/", 1)[1] for request, _ in httpserver.log] == [
        "orderBookDetails",
        "orderBookOrders",
        "nextNonce",
        "sendTx",
    ]
    form = form_of(requests_to(httpserver, "sendTx")[0])
    assert form["tx_type"] == "14" and json.loads(form["tx_info"])["base_amount"] == 1653
    assert placed == VenueOrder(
        venue_order_id=f"0:{index}", client_order_id="order-market-1", status=VenueOrderStatus.PENDING
    )


def test_an_order_below_the_market_minimum_is_refused_before_signing(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_markets(httpserver)
    serve_books(httpserver)

    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request(collateral=Decimal(2), leverage=Decimal(2)))

    assert caught.value.status_code == 400 and "below the ETHUSD minimum" in caught.value.message
    assert fake_signer == [] and requests_to(httpserver, "sendTx") == []


def test_leverage_beyond_the_market_maximum_is_refused(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_markets(httpserver)

    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request(leverage=Decimal(26)))

    assert caught.value.status_code == 400 and "outside 0 .. 25" in caught.value.message
    assert fake_signer == []


def test_orders_of_another_account_are_refused(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request(account_ref="282"))

    assert caught.value.status_code == 400 and "not the configured Lighter account" in caught.value.message
    assert httpserver.log == []


def test_an_invalid_nonce_refusal_is_retryable(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_markets(httpserver)
    serve_books(httpserver)
    httpserver.expect_request(f"{API}/nextNonce").respond_with_json(fixture("next_nonce.json"))
    httpserver.expect_request(f"{API}/sendTx").respond_with_json(
        fixture("error_invalid_nonce.json"), status=400
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request())

    assert caught.value.retryable and caught.value.status_code == 400
    assert "invalid nonce" in caught.value.message
    assert len(requests_to(httpserver, "sendTx")) == 1


def test_a_send_answered_with_500_may_have_been_accepted_and_is_not_retried(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_markets(httpserver)
    serve_books(httpserver)
    httpserver.expect_request(f"{API}/nextNonce").respond_with_json(fixture("next_nonce.json"))
    httpserver.expect_request(f"{API}/sendTx").respond_with_data("upstream error", status=502)

    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request())

    assert not caught.value.retryable and "may have been accepted" in caught.value.message
    assert len(requests_to(httpserver, "sendTx")) == 1


def test_a_send_rate_limited_is_retryable(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_markets(httpserver)
    serve_books(httpserver)
    httpserver.expect_request(f"{API}/nextNonce").respond_with_json(fixture("next_nonce.json"))
    httpserver.expect_request(f"{API}/sendTx").respond_with_json(
        fixture("error_rate_limited.json"), status=429
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().place_order(order=order_request())

    assert caught.value.retryable and caught.value.status_code == 429


def test_cancel_order_sends_a_cancel_transaction_by_client_order_index(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    serve_send(httpserver)
    venue_order_id = f"0:{client_order_index('order-resting-1')}"

    cancelled = make_venue().cancel_order(account_ref="281", venue_order_id=venue_order_id)

    (call,) = fake_signer
    assert (call["tx"], call["market_index"], call["order_index"], call["nonce"]) == (
        "cancel",
        0,
        client_order_index("order-resting-1"),
        722,
    )
    assert form_of(requests_to(httpserver, "sendTx")[0])["tx_type"] == "15"
    assert (cancelled.venue_order_id, cancelled.status) == (venue_order_id, "pending")


def test_close_position_sends_a_reduce_only_market_order_against_it(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    httpserver.expect_request(f"{API}/account").respond_with_json(fixture("account.json"))
    httpserver.expect_request(
        f"{API}/accountActiveOrders", query_string={"account_index": "281", "market_id": "1"}
    ).respond_with_json({"code": 200, "orders": []})  # no stop to cancel
    serve_markets(httpserver)
    serve_books(httpserver)
    serve_send(httpserver)

    closing = make_venue().close_position(account_ref="281", venue_position_id="1")

    (call,) = [call for call in fake_signer if call["tx"] == "create"]
    # short 0.01 BTC: buy it back, worst price 97013.4 x 1.01 = 97983.534 -> 97983.6
    assert (call["market_index"], call["base_amount"], call["is_ask"], call["reduce_only"]) == (
        1,
        1000,
        False,
        True,
    )
    assert (call["price"], call["order_type"], call["time_in_force"]) == (979836, 1, 0)
    assert closing.client_order_id.startswith("close-") and closing.status == "pending"
    assert closing.venue_order_id == f"1:{client_order_index(closing.client_order_id)}"


def test_closing_more_than_the_position_is_refused(
    httpserver: HTTPServer, make_venue: MakeVenue, fake_signer: list[dict[str, Any]]
) -> None:
    httpserver.expect_request(f"{API}/account").respond_with_json(fixture("account.json"))

    with pytest.raises(ProviderError) as caught:
        make_venue().close_position(account_ref="281", venue_position_id="0", size=Decimal("0.6"))

    assert caught.value.status_code == 400 and fake_signer == []


# --- identifiers ----------------------------------------------------------------------


def test_client_order_indexes_are_stable_and_within_48_bits() -> None:
    index = client_order_index("order-market-1")

    assert index == client_order_index("order-market-1") != client_order_index("order-market-2")
    assert 1 <= index < 2**48


def test_the_chain_id_follows_the_host() -> None:
    assert chain_id_for("https://mainnet.zklighter.elliot.ai") == 304
    assert chain_id_for("https://testnet.zklighter.elliot.ai") == 300
    assert chain_id_for("http://127.0.0.1:8000") == 304
