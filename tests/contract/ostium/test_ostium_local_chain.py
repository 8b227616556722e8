"""The Ostium adapter's transactions, sent through the user's wallet provider (the ``local``
signer) to the local chain's Ostium stand-in, and read back through the stand-in subgraph:
open, SL/TP updates, partial close, close, delegation, and a reverted trade."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

import pytest
from eth_typing import HexStr
from web3 import Web3

from demo.localchain.chain import LocalChain
from demo.ostium_subgraph import OstiumPair, OstiumSubgraph
from providers.base import EvmTransaction, OrderType, Side, VenueOrderRequest, VenueOrderStatus, WalletInfo
from providers.venues.ostium.adapter import OstiumVenue
from providers.wallets.local.adapter import LocalWalletProvider
from tests.chain.config import chains_configured

pytestmark = pytest.mark.django_db

EURUSD = 1
PRICE = Decimal("1.1")


@dataclass
class Ostium:
    chain: LocalChain
    venue: OstiumVenue
    trading: str
    storage: str
    usdc: str
    wallets: LocalWalletProvider
    subgraph: OstiumSubgraph

    def send(self, wallet: WalletInfo, transaction: EvmTransaction) -> dict[str, object]:
        sent = self.wallets.sign_and_send_transaction(
            provider_wallet_id=wallet.provider_wallet_id, transaction=transaction
        )
        receipt = self.chain.w3.eth.wait_for_transaction_receipt(HexStr(sent.tx_hash), timeout=10)
        return dict(receipt) | {"hash": sent.tx_hash}

    def price(self, value: Decimal) -> None:
        self.chain.set_ostium_price(self.trading, EURUSD, int(value.scaleb(18)))


@pytest.fixture
def ostium(local_chain: LocalChain) -> Iterator[Ostium]:
    usdc = local_chain.deploy_token("USDC", 6, 10**18)
    trading, storage = local_chain.deploy_ostium(usdc, liquidity_raw=10**12)
    local_chain.set_ostium_price(trading, EURUSD, int(PRICE.scaleb(18)))
    subgraph = OstiumSubgraph(
        rpc_url=local_chain.rpc_url, trading=trading, pairs=[OstiumPair(EURUSD, "EUR", "USD")]
    )
    venue = OstiumVenue(
        rpc_url=local_chain.rpc_url,
        chain_id=local_chain.chain_id,
        price_url="http://127.0.0.1:9/prices",
        subgraph_url=subgraph.start(),
        trading_contract=trading,
        trading_storage_contract=storage,
        usdc_address=usdc,
        timeout="5",
    )
    chains = {str(local_chain.chain_id): {"name": "local", "rpc_url": local_chain.rpc_url, "tokens": {}}}
    with chains_configured(chains):
        try:
            yield Ostium(local_chain, venue, trading, storage, usdc, LocalWalletProvider(), subgraph)
        finally:
            venue.close()
            subgraph.stop()


def _trader(ostium: Ostium, usdc: int = 1_000_000_000) -> WalletInfo:
    wallet = ostium.wallets.create_wallet(
        owner_ref="u", chain_type="ethereum", idempotency_key=str(uuid.uuid4())
    )
    ostium.chain.send_eth(ostium.chain.deployer, wallet.address, 10**18)
    ostium.chain.transfer_token(ostium.usdc, ostium.chain.deployer, wallet.address, usdc)
    return wallet


def _open(
    ostium: Ostium,
    wallet: WalletInfo,
    *,
    leverage: Decimal = Decimal(10),
    via_delegate: bool = False,
    sender: WalletInfo | None = None,
) -> dict[str, object]:
    transaction = ostium.venue.build_open_trade(
        trader=wallet.address,
        pair_index=EURUSD,
        side=Side.LONG,
        collateral=Decimal(100),
        leverage=leverage,
        price=PRICE,
        take_profit=Decimal("1.3"),
        stop_loss=Decimal("1.0"),
        via_delegate=via_delegate,
    )
    return ostium.send(sender or wallet, transaction)


def test_a_trade_opens_moves_its_stops_closes_in_part_then_all_through_the_users_wallet(
    ostium: Ostium,
) -> None:
    wallet = _trader(ostium)
    assert ostium.venue.usdc_allowance(owner=wallet.address) == 0
    ostium.send(wallet, ostium.venue.build_usdc_approval(amount=Decimal(1_000_000)))
    assert ostium.venue.usdc_allowance(owner=wallet.address) == Decimal(1_000_000)

    opened = _open(ostium, wallet)
    assert opened["status"] == 1
    order = ostium.venue.order_for_transaction(tx_hash=str(opened["hash"]))
    assert order is not None and order.status == VenueOrderStatus.FILLED
    assert order.avg_fill_price == PRICE and order.filled_size == Decimal(
        "909.090909090909090909"
    )  # 1000 / 1.1, 18 places
    (position,) = ostium.venue.positions(account_ref=wallet.address)
    assert (position.symbol, position.side, position.collateral, position.leverage) == (
        "EURUSD",
        Side.LONG,
        100,
        10,
    )
    assert position.entry_price == PRICE and position.extra["take_profit"] == "1.3"

    index = int(position.extra["index"])
    ostium.send(
        wallet,
        ostium.venue.build_update_sl(
            trader=wallet.address, pair_index=EURUSD, index=index, stop_loss=Decimal("1.05")
        ),
    )
    ostium.send(
        wallet,
        ostium.venue.build_update_tp(
            trader=wallet.address, pair_index=EURUSD, index=index, take_profit=Decimal("1.25")
        ),
    )
    (position,) = ostium.venue.positions(account_ref=wallet.address)
    assert (position.extra["stop_loss"], position.extra["take_profit"]) == ("1.05", "1.25")

    ostium.price(Decimal("1.21"))  # +10 %: at 10x the closed half doubles
    before = ostium.chain.token_balance(ostium.usdc, wallet.address)
    half = ostium.send(
        wallet,
        ostium.venue.build_close_trade(
            trader=wallet.address,
            pair_index=EURUSD,
            index=index,
            market_price=Decimal("1.21"),
            close_percent=Decimal(50),
        ),
    )
    closed = ostium.venue.order_for_transaction(tx_hash=str(half["hash"]))
    assert (
        closed is not None
        and closed.status == VenueOrderStatus.FILLED
        and closed.avg_fill_price == Decimal("1.21")
    )
    assert (
        ostium.chain.token_balance(ostium.usdc, wallet.address) - before == 100_000_000
    )  # 50 back + 50 profit
    (position,) = ostium.venue.positions(account_ref=wallet.address)
    assert position.collateral == 50

    ostium.send(
        wallet,
        ostium.venue.build_close_trade(
            trader=wallet.address, pair_index=EURUSD, index=index, market_price=Decimal("1.21")
        ),
    )
    assert ostium.venue.positions(account_ref=wallet.address) == []


def test_a_delegate_trades_for_the_user_after_one_set_delegate(ostium: Ostium) -> None:
    wallet = _trader(ostium)
    platform = _trader(ostium, usdc=0)  # the platform's signer: it holds no USDC of its own
    ostium.send(wallet, ostium.venue.build_usdc_approval(amount=Decimal(1_000)))
    ostium.send(wallet, ostium.venue.build_set_delegate(delegate=platform.address))
    assert ostium.venue.delegate_of(trader=wallet.address) == platform.address

    opened = _open(ostium, wallet, via_delegate=True, sender=platform)
    assert opened["status"] == 1
    (position,) = ostium.venue.positions(account_ref=wallet.address)
    assert position.collateral == 100
    assert ostium.venue.positions(account_ref=platform.address) == []
    assert ostium.chain.token_balance(ostium.usdc, wallet.address) == 1_000_000_000 - 100_000_000


def test_a_reverted_trade_names_ostiums_error_and_opens_nothing(ostium: Ostium) -> None:
    wallet = _trader(ostium)
    ostium.send(wallet, ostium.venue.build_usdc_approval(amount=Decimal(1_000)))
    transaction = ostium.venue.build_open_trade(
        trader=wallet.address,
        pair_index=EURUSD,
        side=Side.LONG,
        collateral=Decimal(100),
        leverage=Decimal(500),
        price=PRICE,
    )
    reverted = ostium.send(
        wallet,
        EvmTransaction(
            chain_id=transaction.chain_id, to=transaction.to, data=transaction.data, gas_limit=500_000
        ),
    )
    assert reverted["status"] == 0
    assert ostium.venue.order_for_transaction(tx_hash=str(reverted["hash"])) is None
    assert ostium.venue.positions(account_ref=wallet.address) == []
    assert ostium.chain.token_balance(ostium.usdc, wallet.address) == 1_000_000_000


def test_a_market_order_is_pending_until_the_keeper_settles_it(ostium: Ostium) -> None:
    wallet = _trader(ostium)
    ostium.send(wallet, ostium.venue.build_usdc_approval(amount=Decimal(1_000)))
    trading = ostium.chain.contract("TestOstiumTrading", ostium.trading)
    trading.functions.setAutoExecute(False).transact({"from": ostium.chain.deployer})
    try:
        opened = _open(ostium, wallet)
        pending = ostium.venue.order_for_transaction(tx_hash=str(opened["hash"]))
        assert pending is not None and pending.status == VenueOrderStatus.PENDING
        assert [o.status for o in ostium.venue.open_orders(account_ref=wallet.address)] == [
            VenueOrderStatus.PENDING
        ]
        assert ostium.venue.positions(account_ref=wallet.address) == []
        ostium.price(Decimal("1.1005"))
        trading.functions.executeOrder(int(pending.venue_order_id)).transact({"from": ostium.chain.deployer})
        filled = ostium.venue.order_for_transaction(tx_hash=str(opened["hash"]))
        assert filled is not None and filled.status == VenueOrderStatus.FILLED
        assert filled.avg_fill_price == Decimal("1.1005")
        assert ostium.venue.open_orders(account_ref=wallet.address) == []
    finally:
        trading.functions.setAutoExecute(True).transact({"from": ostium.chain.deployer})
    assert Web3.is_address(wallet.address)


def test_the_deployed_contract_tells_which_abi_version_it_takes(ostium: Ostium) -> None:
    assert ostium.venue.deployed_abi_version() == "day-trade"
    assert ostium.venue.abi_version == "day-trade"
    wallet = _trader(ostium)
    legacy = OstiumVenue(
        rpc_url=ostium.chain.rpc_url,
        chain_id=ostium.chain.chain_id,
        price_url="http://127.0.0.1:9/prices",
        subgraph_url="http://127.0.0.1:9/subgraph",
        trading_contract=ostium.trading,
        trading_storage_contract=ostium.storage,
        usdc_address=ostium.usdc,
        abi_version="legacy",
    )
    try:
        old = legacy.build_open_trade(
            trader=wallet.address,
            pair_index=EURUSD,
            side=Side.LONG,
            collateral=Decimal(100),
            leverage=Decimal(10),
            price=PRICE,
        )
    finally:
        legacy.close()
    new = ostium.venue.build_open_trade(
        trader=wallet.address,
        pair_index=EURUSD,
        side=Side.LONG,
        collateral=Decimal(100),
        leverage=Decimal(10),
        price=PRICE,
    )
    assert new.data.startswith("0x1365e4e4") and old.data.startswith("0x742088c0")
    assert len(old.data) == len(new.data) - 64  # one 32-byte word fewer: no isDayTrade
    with pytest.raises(ValueError, match="abi_version"):
        OstiumVenue(
            rpc_url=ostium.chain.rpc_url,
            chain_id=ostium.chain.chain_id,
            price_url="http://127.0.0.1:9/p",
            subgraph_url="http://127.0.0.1:9/s",
            trading_contract=ostium.trading,
            trading_storage_contract=ostium.storage,
            usdc_address=ostium.usdc,
            abi_version="v9",
        )


def test_the_wallet_trading_capability_builds_approval_trade_close_and_reads_the_keepers_close(
    ostium: Ostium,
) -> None:
    wallet = _trader(ostium)
    request = VenueOrderRequest(
        account_ref=wallet.address,
        client_order_id="1",
        symbol="EURUSD",
        side=Side.LONG,
        type=OrderType.MARKET,
        collateral=Decimal(100),
        leverage=Decimal(10),
        stop_loss=Decimal("1.0"),
    )
    first = ostium.venue.open_trade(order=request, market_price=PRICE)
    assert [t.to for t in first.setup] == [ostium.usdc]  # the approval, to TradingStorage
    for transaction in (*first.setup, first.action):
        assert ostium.send(wallet, transaction)["status"] == 1
    assert ostium.venue.open_trade(order=request, market_price=PRICE).setup == ()  # approved now
    (position,) = ostium.venue.positions(account_ref=wallet.address)

    third = ostium.venue.close_trade(
        account_ref=wallet.address,
        venue_position_id=position.venue_position_id,
        size=position.size / 3,
        position_size=position.size,
        market_price=PRICE,
    )
    assert third.size == (position.size * Decimal("0.3333")).quantize(Decimal("1e-18"), rounding=ROUND_DOWN)
    assert (
        third.action.data
        == ostium.venue.build_close_trade(
            trader=wallet.address,
            pair_index=EURUSD,
            index=0,
            market_price=PRICE,
            close_percent=Decimal("33.33"),
        ).data
    )

    assert (
        ostium.venue.native_close(account_ref=wallet.address, venue_position_id=position.venue_position_id)
        is None
    )
    ostium.price(Decimal("0.99"))
    trading = ostium.chain.contract("TestOstiumTrading", ostium.trading)
    trading.functions.executeTpSl(wallet.address, EURUSD, 0).transact({"from": ostium.chain.deployer})
    closed = ostium.venue.native_close(
        account_ref=wallet.address, venue_position_id=position.venue_position_id
    )
    assert closed is not None and (closed.kind, closed.price) == ("stop_loss", Decimal("1.0"))
    assert ostium.venue.positions(account_ref=wallet.address) == []
