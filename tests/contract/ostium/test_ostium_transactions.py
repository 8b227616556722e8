"""Transactions OstiumVenue builds for the trader's wallet, checked field by field by decoding
their calldata with web3; selectors are the ones ostium-python-sdk 3.3.1's ABI produces."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from web3 import Web3

from providers.base import EvmTransaction, OrderType, Side, VenueOrderRequest
from providers.errors import ProviderError
from providers.venues.ostium.abi import ERC20_ABI, TRADING_ABI, OpenOrderType
from providers.venues.ostium.adapter import OstiumVenue
from tests.contract.ostium.conftest import BUILDER, CHAIN_ID, DELEGATE, TRADER, TRADING, TRADING_STORAGE, USDC

trading = Web3().eth.contract(abi=TRADING_ABI)
usdc = Web3().eth.contract(abi=ERC20_ABI)
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def decoded(transaction: EvmTransaction, *, to: str = TRADING) -> tuple[str, str, dict[str, Any]]:
    """(selector, function name, arguments) of a value-less transaction to ``to`` on Arbitrum One."""
    assert (transaction.chain_id, transaction.to, transaction.value, transaction.gas_limit) == (
        CHAIN_ID,
        to,
        0,
        None,
    )
    contract = usdc if to == USDC else trading
    function, args = contract.decode_function_input(transaction.data)
    return transaction.data[:10], function.fn_name, args


def trade_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "trader": TRADER,
        "pair_index": 2,
        "side": Side.LONG,
        "collateral": Decimal("125.5"),
        "leverage": Decimal("20"),
        "price": Decimal("1.13282"),
    }
    return {**args, **overrides}


# --- openTrade ---------------------------------------------------------------------------


def test_a_market_open_carries_every_field_in_ostiums_units(venue: OstiumVenue) -> None:
    transaction = venue.build_open_trade(
        **trade_args(take_profit=Decimal("1.2"), stop_loss=Decimal("1.1"), slippage_percent=Decimal("0.5")),
        is_day_trade=True,
        builder=BUILDER.lower(),
        builder_fee_percent=Decimal("0.1"),
    )

    selector, name, args = decoded(transaction)
    assert (selector, name) == ("0x1365e4e4", "openTrade")
    assert args["t"] == {
        "collateral": 125_500_000,  # USDC, 6 decimals
        "openPrice": 1_132_820_000_000_000_000,  # 18 decimals
        "tp": 1_200_000_000_000_000_000,
        "sl": 1_100_000_000_000_000_000,
        "trader": TRADER,
        "leverage": 2000,  # x100
        "pairIndex": 2,
        "index": 0,  # the contract assigns it
        "buy": True,
        "isDayTrade": True,
    }
    assert args["bf"] == {"builder": BUILDER, "builderFee": 100_000}  # percent x 1e6
    assert args["orderType"] == 0
    assert args["slippageP"] == 50  # percent x 100


def test_a_market_open_defaults_to_2_percent_slippage_no_tp_sl_and_no_builder(venue: OstiumVenue) -> None:
    _, _, args = decoded(venue.build_open_trade(**trade_args(side=Side.SHORT)))

    assert (args["t"]["tp"], args["t"]["sl"], args["t"]["buy"], args["t"]["isDayTrade"]) == (
        0,
        0,
        False,
        False,
    )
    assert args["bf"] == {"builder": ZERO_ADDRESS, "builderFee": 0}
    assert args["slippageP"] == 200


@pytest.mark.parametrize("order_type", [OpenOrderType.LIMIT, OpenOrderType.STOP])
def test_a_limit_or_stop_open_is_sent_with_zero_slippage(
    venue: OstiumVenue, order_type: OpenOrderType
) -> None:
    transaction = venue.build_open_trade(**trade_args(price=Decimal("1.125")), order_type=order_type)

    _, _, args = decoded(transaction)
    assert args["orderType"] == int(order_type)
    assert args["slippageP"] == 0
    assert args["t"]["openPrice"] == 1_125_000_000_000_000_000


def test_a_price_with_all_18_decimals_and_many_digits_is_encoded_exactly(venue: OstiumVenue) -> None:
    price = Decimal("123456789012.123456789012345678")

    _, _, args = decoded(venue.build_open_trade(**trade_args(price=price)))

    assert args["t"]["openPrice"] == 123456789012123456789012345678


@pytest.mark.parametrize(
    ("market", "side", "limit_price", "order_type", "open_price"),
    [
        ("market", Side.LONG, None, OpenOrderType.MARKET, Decimal("1.13282")),
        ("limit", Side.LONG, Decimal("1.12"), OpenOrderType.LIMIT, Decimal("1.12")),
        ("limit", Side.LONG, Decimal("1.14"), OpenOrderType.STOP, Decimal("1.14")),
        ("limit", Side.SHORT, Decimal("1.14"), OpenOrderType.LIMIT, Decimal("1.14")),
        ("limit", Side.SHORT, Decimal("1.12"), OpenOrderType.STOP, Decimal("1.12")),
    ],
)
def test_build_order_turns_our_order_into_ostiums_order_type(
    venue: OstiumVenue,
    market: str,
    side: Side,
    limit_price: Decimal | None,
    order_type: OpenOrderType,
    open_price: Decimal,
) -> None:
    request = VenueOrderRequest(
        account_ref=TRADER.lower(),
        client_order_id="abc-1",
        symbol="EURUSD",
        side=side,
        type=OrderType(market),
        collateral=Decimal(100),
        leverage=Decimal("12.5"),
        price=limit_price,
    )

    transaction = venue.build_order(order=request, pair_index=2, market_price=Decimal("1.13282"))

    _, name, args = decoded(transaction)
    assert name == "openTrade"
    assert args["orderType"] == int(order_type)
    assert args["slippageP"] == (200 if order_type == OpenOrderType.MARKET else 0)
    t = args["t"]
    assert (t["trader"], t["collateral"], t["leverage"], t["buy"]) == (
        TRADER,
        100_000_000,
        1250,
        side == Side.LONG,
    )
    assert t["openPrice"] == int(open_price * 10**18)


def test_a_delegated_open_wraps_the_call_for_the_traders_delegate(venue: OstiumVenue) -> None:
    direct = venue.build_open_trade(**trade_args())

    transaction = venue.build_open_trade(**trade_args(), via_delegate=True)

    selector, name, args = decoded(transaction)
    assert (selector, name) == ("0x9a10cc32", "delegatedAction")
    assert args["trader"] == TRADER
    assert "0x" + args["call_data"].hex() == direct.data
    inner, inner_args = trading.decode_function_input(args["call_data"])
    assert inner.fn_name == "openTrade" and inner_args["t"]["trader"] == TRADER


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"collateral": Decimal("10.0000001")}, "collateral 10.0000001 has more than 6 decimals"),
        ({"collateral": Decimal(0)}, "collateral must be positive"),
        ({"collateral": Decimal(-5)}, "collateral cannot be negative"),
        ({"leverage": Decimal("10.005")}, "leverage 10.005 has more than 2 decimals"),
        ({"leverage": Decimal(2**32)}, "leverage .* is too large"),
        ({"price": Decimal("1.0000000000000000001")}, "more than 18 decimals"),
        ({"price": Decimal("NaN")}, "price must be a finite Decimal"),
        ({"pair_index": 70000}, "pair_index must be an integer from 0 to 65535"),
        ({"take_profit": Decimal("1.1")}, "take_profit 1.1 is on the wrong side"),
        ({"stop_loss": Decimal("1.2")}, "stop_loss 1.2 is on the wrong side"),
        ({"side": Side.SHORT, "take_profit": Decimal("1.2")}, "take_profit 1.2 is on the wrong side"),
        ({"slippage_percent": Decimal(100)}, "slippage_percent must be below 100"),
        ({"slippage_percent": Decimal("0.005")}, "slippage_percent 0.005 has more than 2 decimals"),
        ({"builder_fee_percent": Decimal("0.6"), "builder": BUILDER}, "builder_fee_percent is at most 0.5"),
        ({"builder_fee_percent": Decimal("0.1")}, "a builder fee needs a builder address"),
        ({"trader": "user-42"}, "trader is not an EVM address"),
    ],
)
def test_an_open_that_would_need_rounding_or_would_revert_is_refused(
    venue: OstiumVenue, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        venue.build_open_trade(**trade_args(**overrides))


def test_a_limit_order_without_price_is_refused(venue: OstiumVenue) -> None:
    request = VenueOrderRequest(
        account_ref=TRADER,
        client_order_id="abc-1",
        symbol="EURUSD",
        side=Side.LONG,
        type=OrderType.LIMIT,
        collateral=Decimal(100),
        leverage=Decimal(10),
    )

    with pytest.raises(ValueError, match="needs a price"):
        venue.build_order(order=request, pair_index=2, market_price=Decimal("1.13"))


# --- closing and protecting a trade --------------------------------------------------------


def test_a_market_close_carries_pair_index_percentage_price_and_slippage(venue: OstiumVenue) -> None:
    transaction = venue.build_close_trade(
        trader=TRADER,
        pair_index=5,
        index=2,
        market_price=Decimal("3291.6"),
        close_percent=Decimal("37.5"),
        slippage_percent=Decimal("1.25"),
    )

    selector, name, args = decoded(transaction)
    assert (selector, name) == ("0xefc10755", "closeTradeMarket")
    assert args == {
        "pairIndex": 5,
        "index": 2,
        "closePercentage": 3750,  # x100
        "marketPrice": 3_291_600_000_000_000_000_000,
        "slippageP": 125,
    }


def test_a_close_defaults_to_the_whole_trade_and_2_percent_slippage(venue: OstiumVenue) -> None:
    _, _, args = decoded(
        venue.build_close_trade(trader=TRADER, pair_index=5, index=0, market_price=Decimal(3291))
    )

    assert (args["closePercentage"], args["slippageP"]) == (10000, 200)


@pytest.mark.parametrize("close_percent", [Decimal(0), Decimal("100.01"), Decimal("-1")])
def test_a_close_of_no_or_more_than_the_whole_trade_is_refused(
    venue: OstiumVenue, close_percent: Decimal
) -> None:
    with pytest.raises(ValueError, match="close_percent"):
        venue.build_close_trade(
            trader=TRADER, pair_index=5, index=0, market_price=Decimal(3291), close_percent=close_percent
        )


def test_a_delegated_close_wraps_the_call(venue: OstiumVenue) -> None:
    transaction = venue.build_close_trade(
        trader=TRADER, pair_index=5, index=1, market_price=Decimal(3291), via_delegate=True
    )

    _, name, args = decoded(transaction)
    assert (name, args["trader"]) == ("delegatedAction", TRADER)
    inner, inner_args = trading.decode_function_input(args["call_data"])
    assert inner.fn_name == "closeTradeMarket"
    assert inner_args == {
        "pairIndex": 5,
        "index": 1,
        "closePercentage": 10000,
        "marketPrice": 3291 * 10**18,
        "slippageP": 200,
    }


@pytest.mark.parametrize(
    ("build", "selector", "function", "field"),
    [
        ("build_update_tp", "0xbe9267be", "updateTp", "newTp"),
        ("build_update_sl", "0xe2441c04", "updateSl", "newSl"),
    ],
)
def test_updating_tp_or_sl_sends_the_new_level_in_18_decimals(
    venue: OstiumVenue, build: str, selector: str, function: str, field: str
) -> None:
    level_name = "take_profit" if build == "build_update_tp" else "stop_loss"
    builder = getattr(venue, build)

    set_level = builder(trader=TRADER, pair_index=10, index=1, **{level_name: Decimal("5950.25")})
    cleared = builder(trader=TRADER, pair_index=10, index=1, **{level_name: None})
    delegated = builder(
        trader=TRADER, pair_index=10, index=1, via_delegate=True, **{level_name: Decimal("5950.25")}
    )

    assert decoded(set_level) == (
        selector,
        function,
        {"pairIndex": 10, "index": 1, field: 5_950_250_000_000_000_000_000},
    )
    assert decoded(cleared) == (selector, function, {"pairIndex": 10, "index": 1, field: 0})
    _, name, args = decoded(delegated)
    assert (name, args["trader"], "0x" + args["call_data"].hex()) == (
        "delegatedAction",
        TRADER,
        set_level.data,
    )


def test_cancelling_a_limit_order_names_its_pair_and_index(venue: OstiumVenue) -> None:
    transaction = venue.build_cancel_limit_order(trader=TRADER, pair_index=5, index=0)

    assert decoded(transaction) == ("0xc444e746", "cancelOpenLimitOrder", {"pairIndex": 5, "index": 0})


def test_an_index_beyond_uint8_is_refused(venue: OstiumVenue) -> None:
    with pytest.raises(ValueError, match="index must be an integer from 0 to 255"):
        venue.build_cancel_limit_order(trader=TRADER, pair_index=5, index=256)


# --- USDC approval and delegation ----------------------------------------------------------


def test_the_usdc_approval_lets_trading_storage_take_the_amount(venue: OstiumVenue) -> None:
    transaction = venue.build_usdc_approval(amount=Decimal("1000000"))

    assert decoded(transaction, to=USDC) == (
        "0x095ea7b3",
        "approve",
        {"spender": TRADING_STORAGE, "value": 1_000_000 * 10**6},
    )


def test_an_approval_of_zero_revokes_and_of_a_fraction_of_a_cent_unit_is_refused(venue: OstiumVenue) -> None:
    assert decoded(venue.build_usdc_approval(amount=Decimal(0)), to=USDC)[2]["value"] == 0
    with pytest.raises(ValueError, match="more than 6 decimals"):
        venue.build_usdc_approval(amount=Decimal("0.0000001"))


def test_setting_and_removing_the_delegate(venue: OstiumVenue) -> None:
    assert decoded(venue.build_set_delegate(delegate=DELEGATE.lower())) == (
        "0xca5eb5e1",
        "setDelegate",
        {"delegate": DELEGATE},
    )
    assert decoded(venue.build_remove_delegate()) == ("0x36fb8b15", "removeDelegate", {})


# --- reverts -----------------------------------------------------------------------------


def test_revert_reason_names_the_ostium_error_a_wallet_error_quotes(venue: OstiumVenue) -> None:
    from_privy = ProviderError(
        "privy",
        "POST /v1/wallets/w1/rpc answered HTTP 400: transaction failed",
        response={"error": "execution reverted", "data": "0xeca695e1"},
    )
    from_chain = ProviderError("evm:42161", "the transaction would revert: ('0x083fbd78', '0x083fbd78')")
    unrelated = ProviderError("privy", "insufficient funds for gas * price + value")

    assert OstiumVenue.revert_reason(from_privy) == "BelowMinLevPos"
    assert OstiumVenue.revert_reason(from_chain) == "WrongSL"
    assert OstiumVenue.revert_reason(unrelated) is None
