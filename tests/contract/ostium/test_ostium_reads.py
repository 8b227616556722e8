"""OstiumVenue's reads against a fake price service, subgraph and RPC answering in Ostium's
documented formats (ostium-python-sdk 3.3.1: price.py, subgraph.py)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import (
    Market,
    MarketCategory,
    Quote,
    Side,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from providers.base import OrderType as OurOrderType
from providers.errors import ProviderError
from providers.venues.ostium.abi import ERC20, TRADING
from providers.venues.ostium.adapter import OstiumVenue
from tests.contract.evm.fake_rpc import calls, json_rpc, node
from tests.contract.ostium.conftest import (
    CHAIN_ID,
    DELEGATE,
    PRICE_PATH,
    RPC_KEY,
    RPC_PATH,
    SUBGRAPH_PATH,
    TRADER,
    TRADING_STORAGE,
    USDC,
    MakeVenue,
    fixture,
)


def graphql_requests(server: HTTPServer) -> list[dict[str, object]]:
    return [json.loads(request.get_data()) for request, _ in server.log if request.path == SUBGRAPH_PATH]


def assert_no_rpc_key(error: ProviderError) -> None:
    assert RPC_KEY not in str(error) and RPC_KEY not in repr(error.response)


# --- markets -----------------------------------------------------------------------------


def test_markets_maps_pairs_to_our_categories_with_their_limits(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(fixture("pairs.json"))

    markets = make_venue().markets()

    def market(
        symbol: str, pair: str, category: MarketCategory, min_collateral: str, leverage: str
    ) -> Market:
        return Market(
            symbol=symbol,
            venue_symbol=pair,
            category=category,
            tick_size=Decimal("0.00001"),
            size_step=Decimal("0.000001"),
            min_collateral=Decimal(min_collateral),
            max_leverage=Decimal(leverage),
        )

    assert markets == [
        market("BTCUSD", "0", MarketCategory.CRYPTO, "30", "50"),
        market("EURUSD", "2", MarketCategory.FOREX, "10", "100"),
        market("USDJPY", "4", MarketCategory.FOREX, "10", "100"),
        market("XAUUSD", "5", MarketCategory.COMMODITIES, "15", "100"),
        # The pair's own limit (30x) is below its group's (100x): the smaller one is offered,
        # and the minimum collateral (1000 USDC position / 30x) is rounded up to a USDC unit.
        market("CLUSD", "7", MarketCategory.COMMODITIES, "33.333334", "30"),
        market("SPXUSD", "10", MarketCategory.INDICES, "20", "50"),
    ]
    (body,) = graphql_requests(httpserver)
    assert "pairs(first: 1000)" in str(body["query"])


def test_a_malformed_pair_is_left_out_and_an_unknown_group_is_logged(
    httpserver: HTTPServer, make_venue: MakeVenue, caplog: pytest.LogCaptureFixture
) -> None:
    answer = fixture("pairs.json")
    pairs = answer["data"]["pairs"]
    del pairs[0]["fee"]
    pairs[1]["group"]["name"] = "rates"
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(answer)

    with caplog.at_level(logging.WARNING, logger="providers.venues.ostium.adapter"):
        symbols = [market.symbol for market in make_venue().markets()]

    assert symbols == ["USDJPY", "XAUUSD", "CLUSD", "SPXUSD"]
    assert "unexpected shape" in caplog.text and "'rates'" in caplog.text
    assert "stocks" not in caplog.text


# --- prices ------------------------------------------------------------------------------


def test_prices_of_many_symbols_take_one_request(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(PRICE_PATH, method="GET").respond_with_json(fixture("latest_prices.json"))

    quotes = make_venue().prices(symbols=["BTCUSD", "EURUSD", "SPXUSD", "DOGEUSD"])

    assert quotes == {
        "BTCUSD": Quote(
            symbol="BTCUSD",
            bid=Decimal("107646.0133"),
            ask=Decimal("107646.0602"),
            ts=datetime.fromtimestamp(1748460056, tz=UTC),
            market_open=True,
        ),
        "EURUSD": Quote(
            symbol="EURUSD",
            bid=Decimal("1.13281"),
            ask=Decimal("1.13282"),
            ts=datetime.fromtimestamp(1748460055, tz=UTC),
            market_open=True,
        ),
        "SPXUSD": Quote(
            symbol="SPXUSD",
            bid=Decimal("5912.15"),
            ask=Decimal("5912.65"),
            ts=datetime.fromtimestamp(1748390400, tz=UTC),
            market_open=False,
        ),
    }
    assert len(httpserver.log) == 1


def test_prices_of_no_symbol_ask_nothing(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    assert make_venue().prices(symbols=[]) == {}
    assert httpserver.log == []


def test_a_malformed_price_is_left_out_of_the_batch(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    answer = fixture("latest_prices.json")
    answer[0]["bid"] = None
    answer[1]["ask"] = 0
    httpserver.expect_request(PRICE_PATH).respond_with_json(answer)

    quotes = make_venue().prices(symbols=["BTCUSD", "EURUSD", "USDJPY"])

    assert list(quotes) == ["USDJPY"]


def test_a_price_answer_that_is_not_a_list_is_an_error(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(PRICE_PATH).respond_with_json({"prices": []})

    with pytest.raises(ProviderError) as caught:
        make_venue().prices(symbols=["BTCUSD"])

    assert (caught.value.provider, caught.value.retryable) == ("ostium", False)
    assert caught.value.response == {"prices": []}


def test_a_persistent_429_is_retried_then_ends_as_a_retryable_error(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(PRICE_PATH).respond_with_json(
        fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "0"}
    )

    with pytest.raises(ProviderError) as caught:
        make_venue(max_attempts="3").prices(symbols=["BTCUSD"])

    assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == ("ostium", 429, True)
    assert "Too Many Requests" in str(caught.value)
    assert len(httpserver.log) == 3


def test_a_slow_price_service_times_out_as_a_retryable_error(
    slow_server: HTTPServer, make_venue: MakeVenue
) -> None:
    def too_slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(json.dumps(fixture("latest_prices.json")), content_type="application/json")

    slow_server.expect_request(PRICE_PATH).respond_with_handler(too_slow)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        make_venue(slow_server, timeout="0.1", max_attempts="1").prices(symbols=["BTCUSD"])

    assert time.monotonic() - started < 0.45
    assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == ("ostium", None, True)
    assert "timed out" in str(caught.value)


# --- positions and orders ------------------------------------------------------------------


def test_positions_are_the_open_trades_of_the_lowercased_trader(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(fixture("open_trades.json"))

    positions = make_venue().positions(account_ref=TRADER)

    assert positions == [
        VenuePosition(
            venue_position_id="663812",
            symbol="EURUSD",
            side=Side.LONG,
            size=Decimal("22068.916813424963475942"),  # 1250 USDC x 20 / 1.132815
            entry_price=Decimal("1.132815"),
            collateral=Decimal("1250"),
            leverage=Decimal("20"),
            extra={
                "trade_id": "663812",
                "pair_index": "2",
                "index": "1",
                "opened_at": "2025-05-28T19:21:01+00:00",
                "stop_loss": "1.1",
            },
        ),
        VenuePosition(
            venue_position_id="701224",
            symbol="XAUUSD",
            side=Side.SHORT,
            size=Decimal("0.759467522130883594"),  # 250 USDC x 10 / 3291.78
            entry_price=Decimal("3291.78"),
            collateral=Decimal("250"),
            leverage=Decimal("10"),
            extra={
                "trade_id": "701224",
                "pair_index": "5",
                "index": "0",
                "opened_at": "2025-05-28T19:22:02+00:00",
                "take_profit": "3100",
            },
        ),
    ]
    (body,) = graphql_requests(httpserver)
    assert body["variables"] == {"trader": TRADER.lower()}
    assert "isOpen: true" in str(body["query"])


def test_a_trade_in_an_unexpected_shape_fails_the_positions(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    answer = fixture("open_trades.json")
    del answer["data"]["trades"][1]["openPrice"]
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(answer)

    with pytest.raises(ProviderError) as caught:
        make_venue().positions(account_ref=TRADER)

    assert (caught.value.provider, caught.value.retryable) == ("ostium", False)
    assert "openPrice" in str(caught.value)


def test_positions_of_something_that_is_not_an_address_ask_nothing(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    with pytest.raises(ValueError, match="account_ref"):
        make_venue().positions(account_ref="user-42")
    assert httpserver.log == []


def test_open_orders_are_resting_limits_and_market_orders_awaiting_the_keeper(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(fixture("open_orders.json"))

    orders = make_venue().open_orders(account_ref=TRADER)

    assert orders == [
        VenueOrder(
            venue_order_id="0x5b38da6a701c568545dcfcb03fcb875f56beddc4_5_0",
            client_order_id="",
            status=VenueOrderStatus.OPEN,
        ),
        VenueOrder(venue_order_id="912345", client_order_id="", status=VenueOrderStatus.PENDING),
    ]
    (body,) = graphql_requests(httpserver)
    assert body["variables"] == {"trader": TRADER.lower()}


def test_get_order_is_none_without_asking_since_ostium_keeps_no_client_id(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    assert make_venue().get_order(account_ref=TRADER, client_order_id="abc-1") is None
    assert httpserver.log == []


TX_HASH = "0x9c1e5d0b1f2a3e4d5c6b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6f7E8D"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "order_filled.json",
            VenueOrder(
                venue_order_id="912345",
                client_order_id="",
                status=VenueOrderStatus.FILLED,
                filled_size=Decimal("22067.261011563244770059"),  # 1250 USDC x 20 / 1.1329
                avg_fill_price=Decimal("1.1329"),
            ),
        ),
        (
            "order_cancelled.json",
            VenueOrder(
                venue_order_id="912346",
                client_order_id="",
                status=VenueOrderStatus.CANCELLED,
                reject_reason="SLIPPAGE",
            ),
        ),
        (
            "order_pending.json",
            VenueOrder(venue_order_id="912347", client_order_id="", status=VenueOrderStatus.PENDING),
        ),
        ("order_none.json", None),
    ],
)
def test_order_for_transaction_follows_the_order_a_trade_transaction_started(
    httpserver: HTTPServer, make_venue: MakeVenue, answer: str, expected: VenueOrder | None
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(fixture(answer))

    assert make_venue().order_for_transaction(tx_hash=TX_HASH) == expected
    (body,) = graphql_requests(httpserver)
    assert f'initiatedTx: "{TX_HASH.lower()}"' in str(body["query"])


def test_order_for_something_that_is_not_a_transaction_hash_asks_nothing(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    with pytest.raises(ValueError, match="transaction hash"):
        make_venue().order_for_transaction(tx_hash='0x12" } } { evil')
    assert httpserver.log == []


# --- subgraph error shapes -----------------------------------------------------------------


def test_graphql_errors_are_a_non_retryable_error_quoting_them(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(fixture("graphql_error.json"))

    with pytest.raises(ProviderError) as caught:
        make_venue().markets()

    assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == (
        "ostium",
        None,
        False,
    )
    assert "has no field `pairs`" in str(caught.value)
    assert caught.value.response == fixture("graphql_error.json")
    assert len(httpserver.log) == 1


def test_a_subgraph_5xx_is_retried_since_a_query_changes_nothing(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_oneshot_request(SUBGRAPH_PATH, method="POST").respond_with_json(
        {"message": "upstream unavailable"}, status=503
    )
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(fixture("pairs.json"))

    assert len(make_venue().markets()) == 6
    assert len(httpserver.log) == 2


def test_a_subgraph_4xx_is_a_non_retryable_error_with_its_message(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_json(
        {"message": "deployment not found"}, status=404
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().positions(account_ref=TRADER)

    assert (caught.value.status_code, caught.value.retryable) == (404, False)
    assert "deployment not found" in str(caught.value)
    assert len(httpserver.log) == 1


def test_a_subgraph_answer_that_is_not_json_is_an_error(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(SUBGRAPH_PATH, method="POST").respond_with_data(
        "<html>Bad gateway</html>", content_type="text/html"
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().markets()

    assert "not JSON" in str(caught.value)
    assert caught.value.response == "<html>Bad gateway</html>"


# --- writes ----------------------------------------------------------------------------------


def test_orders_are_refused_pointing_to_the_builders_and_the_users_wallet(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    venue = make_venue()
    request = VenueOrderRequest(
        account_ref=TRADER,
        client_order_id="abc-1",
        symbol="EURUSD",
        side=Side.LONG,
        type=OurOrderType.MARKET,
        collateral=Decimal(100),
        leverage=Decimal(10),
    )

    for call, builder in (
        (lambda: venue.place_order(order=request), "build_order"),
        (lambda: venue.cancel_order(account_ref=TRADER, venue_order_id="1"), "build_cancel_limit_order"),
        (lambda: venue.close_position(account_ref=TRADER, venue_position_id="663812"), "build_close_trade"),
    ):
        with pytest.raises(ProviderError) as caught:
            call()
        assert (caught.value.provider, caught.value.retryable) == ("ostium", False)
        assert "sent through the user's wallet" in str(caught.value) and builder in str(caught.value)
    assert httpserver.log == []


# --- RPC reads and health ------------------------------------------------------------------


def test_usdc_allowance_reads_what_trading_storage_may_take(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    allowance = "0x" + (1_000_000 * 10**6).to_bytes(32, "big").hex()
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_handler(
        json_rpc(node({"eth_call": {"result": allowance}}, chain_id=CHAIN_ID))
    )

    assert make_venue().usdc_allowance(owner=TRADER.lower()) == Decimal(1_000_000)

    (call,) = [c for c in calls(httpserver.log) if c["method"] == "eth_call"]
    transaction = call["params"][0]
    assert transaction["to"] == USDC
    function, args = ERC20.decode_function_input(transaction["data"])
    assert function.fn_name == "allowance"
    assert args == {"owner": TRADER, "spender": TRADING_STORAGE}


@pytest.mark.parametrize(
    ("word", "expected"), [("00" * 32, None), ("00" * 12 + DELEGATE[2:].lower(), DELEGATE)]
)
def test_delegate_of_reads_the_trading_contracts_delegations(
    httpserver: HTTPServer, make_venue: MakeVenue, word: str, expected: str | None
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_handler(
        json_rpc(node({"eth_call": {"result": "0x" + word}}, chain_id=CHAIN_ID))
    )

    assert make_venue().delegate_of(trader=TRADER) == expected

    (call,) = [c for c in calls(httpserver.log) if c["method"] == "eth_call"]
    function, args = TRADING.decode_function_input(call["params"][0]["data"])
    assert (function.fn_name, args) == ("delegations", {"delegator": TRADER})


def test_an_rpc_on_another_chain_is_refused(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_handler(json_rpc(node({}, chain_id=1)))

    with pytest.raises(ProviderError) as caught:
        make_venue().usdc_allowance(owner=TRADER)

    assert caught.value.provider == "ostium"
    assert "chain id 1, not the configured 42161" in str(caught.value)
    assert [c["method"] for c in calls(httpserver.log)] == ["eth_chainId"]


def test_an_rpc_failure_never_quotes_the_rpc_url(httpserver: HTTPServer, make_venue: MakeVenue) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_data(
        f"upstream error for /v2/{RPC_KEY}", status=502
    )

    with pytest.raises(ProviderError) as caught:
        make_venue().usdc_allowance(owner=TRADER)

    assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == ("ostium", 502, True)
    assert_no_rpc_key(caught.value)


def test_health_check_reads_prices_once_and_checks_the_rpc_chain(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(PRICE_PATH).respond_with_json(fixture("latest_prices.json"))
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_handler(
        json_rpc(node({"eth_blockNumber": {"result": "0x14f2a6b"}}, chain_id=CHAIN_ID))
    )

    make_venue().health_check()

    assert httpserver.log[0][0].path == PRICE_PATH
    assert [c["method"] for c in calls([e for e in httpserver.log if e[0].path == RPC_PATH])] == [
        "eth_chainId",
        "eth_blockNumber",
    ]


def test_a_failed_price_service_fails_the_health_check_after_one_attempt(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    httpserver.expect_request(PRICE_PATH).respond_with_json({"error": "internal"}, status=500)

    with pytest.raises(ProviderError) as caught:
        make_venue(max_attempts="3").health_check()

    assert (caught.value.status_code, caught.value.retryable) == (500, True)
    assert len(httpserver.log) == 1


def test_the_catalogue_defaults_are_the_sdks_mainnet() -> None:
    options = dict(settings.PROVIDERS["ostium"]["options"], rpc_url="https://arb1.example/rpc")
    venue = OstiumVenue(**options)

    assert (venue.chain_id, venue.trading_contract, venue.trading_storage_contract, venue.usdc_address) == (
        CHAIN_ID,
        "0x6D0bA1f9996DBD8885827e1b2e8f6593e7702411",
        "0xcCd5891083A8acD2074690F65d3024E7D13d66E7",
        "0xaf88d065e77c8cC2239327C5EDb3A432268e5831",
    )
    venue.close()
