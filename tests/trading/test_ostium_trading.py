"""Ostium end to end through the trading engine, from the user's own wallet: the local chain
runs the Ostium stand-in contracts, the stand-in subgraph (which also plays the price
service) reads them, the registry builds the real ``OstiumVenue`` against both, and the
user's ``local`` MPC wallet signs and sends every transaction (gas from the gas station,
which also sends the wallet the USDC collateral it lacks).

What is asserted is what the user and the chain show: order and position rows and API
bodies, the wallet's transactions and the contract's state, the ledger's balances."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django_redis import get_redis_connection
from eth_typing import HexStr
from eth_utils import to_checksum_address

from accounts.models import Wallet
from accounts.services.wallets import wallet_mpc_create
from conftest import bearer_client
from demo.localchain.chain import LocalChain
from demo.ostium_subgraph import OstiumPair, OstiumSubgraph
from ledger.checks import ledger_check
from ledger.models import LedgerAccount, LedgerTransaction
from ledger.selectors import user_balances
from pricing.services.pairs import pairs_sync
from pricing.services.prices import price_get
from providers import registry
from providers.models import RoutingRule
from providers.services.routing import routing_rule_create
from tests.chain.config import providers_with_chains
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.services.orders import OrderTerms, order_place, order_poll
from trading.services.positions import protective_native_poll
from trading.services.venues import VENUE_ACCOUNT_FUND, venue_wallet_fund
from trading.services.wallet_trades import wallet_venue
from trading.triggers.index import SETS, index_key, protective_index, protective_member

pytestmark = pytest.mark.django_db

ETH = 0  # the pair index
PRICE = Decimal(2000)
GAS_STATION = 8  # the local chain's funded account that plays the gas station
STATION_USDC = 10_000 * 10**6  # what the gas station holds to fund users' wallets


@dataclass
class OstiumWorld:
    chain: LocalChain
    trading: str
    storage: str
    usdc: str
    subgraph: OstiumSubgraph

    def price(self, value: Decimal) -> None:
        """The oracle's (and so the price service's) price; our cached quote is dropped."""
        self.chain.set_ostium_price(self.trading, ETH, int(value.scaleb(18)))
        _forget_prices()

    def trade(self, trader: str, index: int = 0) -> Any:
        return (
            self.chain.contract("TestOstiumTrading", self.trading)
            .functions.getTrade(trader, ETH, index)
            .call()
        )

    def is_open(self, trader: str, index: int = 0) -> bool:
        contract = self.chain.contract("TestOstiumTrading", self.trading)
        return bool(contract.functions.isOpen(trader, ETH, index).call())

    def usdc_of(self, address: str) -> int:
        return self.chain.token_balance(self.usdc, address)

    def sent_by(self, address: str) -> int:
        return int(self.chain.w3.eth.get_transaction_count(to_checksum_address(address)))

    @property
    def station(self) -> str:
        return str(self.chain.accounts[GAS_STATION].address)

    def usdc_transfers_to(self, address: str) -> list[tuple[str, int]]:
        """Every USDC ``Transfer`` to ``address`` on the chain: (sender, amount in base units)."""
        logs = (
            self.chain.contract("TestToken", self.usdc)
            .events.Transfer()
            .get_logs(from_block=0, argument_filters={"to": to_checksum_address(address)})
        )
        return [(str(log["args"]["from"]), int(log["args"]["value"])) for log in logs]


def _venue(name: str) -> Decimal:
    """The balance of the platform's ledger account ``venue`` / ``name`` (0 when none)."""
    account = LedgerAccount.objects.filter(
        user__isnull=True, kind=LedgerAccount.Kind.VENUE, name=name
    ).first()
    return account.balance if account is not None else Decimal(0)


def _funding(order: Order) -> list[tuple[str, Decimal]]:
    """The ledger legs funding ``order`` at its venue: (account name, amount)."""
    return sorted(
        (entry.account.name, entry.amount)
        for tx in LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND, reference=f"order:{order.pk}")
        for entry in tx.entries.select_related("account")
    )


def _forget_prices() -> None:
    redis = get_redis_connection("default")
    for pattern in ("marqetfi:price:*", "marqetfi:triggers:*"):
        for key in redis.scan_iter(pattern):
            redis.delete(key)


@pytest.fixture
def ostium(local_chain: LocalChain, db: Any) -> Iterator[OstiumWorld]:
    usdc = local_chain.deploy_token("USDC", 6, 10**18)
    trading, storage = local_chain.deploy_ostium(usdc, liquidity_raw=10**12)
    local_chain.set_ostium_price(trading, ETH, int(PRICE.scaleb(18)))
    subgraph = OstiumSubgraph(
        rpc_url=local_chain.rpc_url,
        trading=trading,
        pairs=[OstiumPair(ETH, "ETH", "USD", group="crypto", overnight_max_leverage=5000)],
    )
    subgraph_url = subgraph.start()
    chain_id = str(local_chain.chain_id)
    station_key = "0x" + bytes(local_chain.accounts[GAS_STATION].key).hex()
    providers = providers_with_chains(
        {
            chain_id: {
                "name": "local",
                "rpc_url": local_chain.rpc_url,
                "tokens": {"USDC": {"address": usdc, "decimals": 6}},
            }
        },
        {"gas_station_keys": {chain_id: station_key}},
    )
    providers["ostium"] = copy.deepcopy(providers["ostium"])
    providers["ostium"]["options"] = {
        **providers["ostium"]["options"],
        "rpc_url": local_chain.rpc_url,
        "chain_id": chain_id,
        "price_url": subgraph.prices_url(),
        "subgraph_url": subgraph_url,
        "trading_contract": trading,
        "trading_storage_contract": storage,
        "usdc_address": usdc,
        "timeout": "5",
    }
    local_chain.transfer_token(
        usdc, local_chain.deployer, local_chain.accounts[GAS_STATION].address, STATION_USDC
    )
    _forget_prices()
    with override_settings(PROVIDERS=providers):
        registry.reset_cache()
        routing_rule_create(match=RoutingRule.Match.CATEGORY, value="crypto", venues=["ostium"])
        pairs_sync(provider="ostium")
        try:
            yield OstiumWorld(local_chain, trading, storage, usdc, subgraph)
        finally:
            registry.reset_cache()
            subgraph.stop()
            _forget_prices()


@pytest.fixture
def wallet(ostium: OstiumWorld, trader: Any) -> Wallet:
    """The trader's local MPC wallet, holding no USDC and no ETH at all (as after a deposit,
    which goes to the platform's collection address)."""
    created, _ = wallet_mpc_create(user=trader, provider="local")
    return created


def _order(**overrides: Any) -> OrderTerms:
    terms = {
        "symbol": "ETHUSD",
        "side": "long",
        "type": "market",
        "collateral": Decimal(100),
        "leverage": Decimal(10),
        "stop_loss": Decimal(1900),
        "take_profit": Decimal(2400),
    }
    return OrderTerms(**{**terms, **overrides})


def test_open_stops_partial_close_and_close_go_through_the_users_wallet_at_the_chains_prices(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    client = bearer_client(trader)

    order, _ = order_place(user=trader, order=_order())

    assert order.status == Order.Status.FILLED, (order.reject_code, order.reject_reason)
    # The gas station sent the wallet exactly the collateral, recorded once in the ledger as
    # the platform's Ostium account funding the user's (no user balance moves for it).
    assert ostium.usdc_transfers_to(wallet.address) == [(ostium.station, 100 * 10**6)]
    assert _funding(order) == [("ostium", Decimal(-100)), (f"ostium:{wallet.address}", Decimal(100))]
    assert (_venue("ostium"), _venue(f"ostium:{wallet.address}")) == (Decimal(-100), Decimal(100))
    # The wallet sent the approval to TradingStorage, then openTrade (gas from the station),
    # which took the collateral it had just received.
    assert ostium.sent_by(wallet.address) == 2
    assert ostium.usdc_of(wallet.address) == 0
    assert ostium.usdc_of(ostium.station) == STATION_USDC - 100 * 10**6
    # Funding again for an order already funded (a retry) sends nothing and records nothing.
    traded = wallet_venue(registry.venue("ostium"))
    assert traded is not None
    again = venue_wallet_fund(
        order=order, provider="ostium", venue=traded, wallet=wallet, account_ref=wallet.address
    )
    assert again == 0 and len(ostium.usdc_transfers_to(wallet.address)) == 1
    assert LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND).count() == 1
    assert order.venue_client_order_id.startswith("0x") and len(order.venue_client_order_id) == 66
    trade = ostium.trade(wallet.address)
    assert (trade[0], trade[1], trade[2], trade[3], trade[5]) == (
        100 * 10**6,
        2000 * 10**18,
        2400 * 10**18,
        1900 * 10**18,
        1000,
    )
    position = Position.objects.get(user=trader)
    assert (position.size, position.entry_price, position.provider, position.account_ref) == (
        Decimal("0.5"),
        PRICE,
        "ostium",
        wallet.address,
    )
    assert position.venue_position_id
    second = client.post(
        "/api/v1/orders",
        {"symbol": "ETHUSD", "side": "long", "type": "market", "collateral": "100", "leverage": "10"},
        format="json",
    )
    assert second.status_code == 409 and second.json()["error"]["code"] == "position_exists"
    body = client.get(f"/api/v1/orders/{order.pk}").json()
    assert body["execution_mode"] == {"stop_loss": "native", "take_profit": "native"}
    assert ledger_check() == []

    # Stops change on chain, sent by the wallet; ours are native (the trigger engine skips them).
    response = client.patch(
        f"/api/v1/positions/{position.pk}", {"stop_loss": "1950", "take_profit": "2500"}, format="json"
    )
    assert response.status_code == 200, response.json()
    trade = ostium.trade(wallet.address)
    assert (trade[3], trade[2]) == (1950 * 10**18, 2500 * 10**18)
    protective = {p["kind"]: p for p in response.json()["protective_orders"]}
    assert protective["stop_loss"]["execution_mode"] == "native"
    assert protective["take_profit"]["execution_mode"] == "native"
    assert (
        ProtectiveOrder.objects.filter(position=position, status="armed", execution_mode="native").count()
        == 2
    )
    assert ledger_check() == []

    # Half closes at the chain's price: +5 % on 0.25 ETH.
    ostium.price(Decimal(2100))
    available = user_balances(user=trader).available
    response = client.post(
        f"/api/v1/positions/{position.pk}/close", {"type": "market", "size": "0.25"}, format="json"
    )
    assert response.status_code in (200, 201, 202), response.json()
    position.refresh_from_db()
    assert (position.status, position.size, position.collateral) == ("open", Decimal("0.25"), Decimal(50))
    assert ostium.trade(wallet.address)[0] == 50 * 10**6
    half = Fill.objects.get(position=position, kind="close")
    assert (half.size, half.price, half.realized_pnl) == (Decimal("0.25"), Decimal(2100), Decimal(25))
    assert user_balances(user=trader).available == available + Decimal(50) + Decimal(25) - half.fee
    assert ledger_check() == []

    # The rest closes: the trade is gone on chain and our position is closed at its price.
    ostium.price(Decimal(1980))
    response = client.post(f"/api/v1/positions/{position.pk}/close", {"type": "market"}, format="json")
    assert response.status_code in (200, 201, 202), response.json()
    position.refresh_from_db()
    assert position.status == "closed"
    assert not ostium.is_open(wallet.address)
    last = Fill.objects.filter(position=position, kind="close").order_by("-created_at").first()
    assert last is not None and (last.size, last.price, last.realized_pnl) == (
        Decimal("0.25"),
        Decimal(1980),
        Decimal(-5),
    )
    assert ProtectiveOrder.objects.filter(position=position, status="armed").count() == 0
    # 50 + 25 (half) + 50 - 5 (rest), paid back to the wallet by the contract, stay there.
    assert ostium.usdc_of(wallet.address) == 120 * 10**6
    assert _venue(f"ostium:{wallet.address}") == Decimal(100)
    assert ledger_check() == []


def test_orders_stay_pending_with_their_collateral_locked_until_the_keeper_settles_them(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    trading = ostium.chain.contract("TestOstiumTrading", ostium.trading)
    trading.functions.setAutoExecute(False).transact({"from": ostium.chain.deployer})
    before = user_balances(user=trader)

    order, _ = order_place(user=trader, order=_order())

    assert order.status == Order.Status.PENDING
    assert order.next_poll_at is not None
    locked = user_balances(user=trader)
    assert locked.available == before.available - order.collateral - order.fee_reserved
    assert not Position.objects.filter(user=trader).exists()
    assert order_poll(order_id=order.pk).status == Order.Status.PENDING  # mined, not executed
    assert ledger_check() == []

    # The keeper executes at the oracle's price then, not at the one the order was sent at.
    ostium.chain.set_ostium_price(ostium.trading, ETH, 2010 * 10**18)
    pending_id = int(trading.functions.nextOrderId().call()) - 1
    trading.functions.executeOrder(pending_id).transact({"from": ostium.chain.deployer})
    filled = order_poll(order_id=order.pk)
    assert (filled.status, filled.avg_fill_price) == (Order.Status.FILLED, Decimal(2010))
    position = Position.objects.get(user=trader)
    assert position.entry_price == Decimal(2010)
    filled.refresh_from_db()
    # collateral x leverage / 2010, as the chain's trade: 18 decimals, which SQLite (the
    # embedded default) keeps as a float, to 15 significant digits; PostgreSQL keeps them all.
    assert abs(position.size - filled.filled_size) <= filled.filled_size * Decimal("1e-15")
    assert abs(position.size - Decimal(1000) / Decimal(2010)) <= Decimal("1e-15")
    assert ledger_check() == []

    # A close is pending too: the position is ``closing`` until the keeper settles it.
    _forget_prices()
    response = bearer_client(trader).post(
        f"/api/v1/positions/{position.pk}/close", {"type": "market"}, format="json"
    )
    assert response.status_code in (200, 201, 202), response.json()
    position.refresh_from_db()
    assert position.status == "closing"
    close = Order.objects.get(position=position, purpose="close")
    assert close.status == Order.Status.PENDING and close.venue_client_order_id.startswith("0x")
    ostium.chain.set_ostium_price(ostium.trading, ETH, 2030 * 10**18)
    trading.functions.executeOrder(int(trading.functions.nextOrderId().call()) - 1).transact(
        {"from": ostium.chain.deployer}
    )
    trading.functions.setAutoExecute(True).transact({"from": ostium.chain.deployer})
    assert order_poll(order_id=close.pk).status == Order.Status.FILLED
    position.refresh_from_db()
    assert position.status == "closed"
    assert Fill.objects.get(position=position, kind="close").price == Decimal(2030)
    assert not ostium.is_open(wallet.address)
    assert ledger_check() == []


def test_a_stop_loss_the_keeper_executes_on_chain_closes_our_position_at_the_stop(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    order, _ = order_place(user=trader, order=_order(trailing_stop={"percent": "4"}))
    position = Position.objects.get(user=trader)
    stop = ProtectiveOrder.objects.get(position=position, kind="stop_loss", status="armed")
    assert stop.execution_mode == "native"
    trailing = ProtectiveOrder.objects.get(position=position, kind="trailing_stop", status="armed")
    assert trailing.execution_mode == "synthetic"  # Ostium holds no trailing stop: ours
    assert bearer_client(trader).get(f"/api/v1/orders/{order.pk}").json()["execution_mode"] == {
        "stop_loss": "native",
        "take_profit": "native",
        "trailing_stop": "synthetic",
    }
    # Not in the trigger engine's index (our platform's liquidation, synthetic, is).
    liquidation = ProtectiveOrder.objects.get(position=position, kind="liquidation", status="armed")
    protective_index(stop.pk)
    protective_index(liquidation.pk)
    redis = get_redis_connection("default")
    indexed = {m.decode() for name in SETS for m in redis.zrange(index_key("ETHUSD", name), 0, -1)}
    assert protective_member(liquidation.pk) in indexed
    assert protective_member(stop.pk) not in indexed
    assert protective_native_poll() == 0

    ostium.price(Decimal(1850))  # under the stop: the keeper closes the trade at 1900
    trading = ostium.chain.contract("TestOstiumTrading", ostium.trading)
    trading.functions.executeTpSl(wallet.address, ETH, 0).transact({"from": ostium.chain.deployer})
    assert not ostium.is_open(wallet.address)

    assert protective_native_poll() == 1
    assert protective_native_poll() == 0

    position.refresh_from_db()
    stop.refresh_from_db()
    assert position.status == "closed"
    assert (stop.status, stop.fired_price) == ("fired", Decimal(1900))
    close = Fill.objects.get(position=position, kind="close")
    assert (close.size, close.price, close.realized_pnl) == (Decimal("0.5"), Decimal(1900), Decimal(-50))
    assert close.order is not None and close.order.closed_by == "stop_loss"
    assert ProtectiveOrder.objects.filter(position=position, status="armed").count() == 0
    # The contract paid 100 - 50 back to the wallet, as our ledger settled.
    assert ostium.usdc_of(wallet.address) == 50 * 10**6
    assert order.status == Order.Status.FILLED
    assert ledger_check() == []


def test_the_payout_of_a_close_left_in_the_wallet_backs_the_next_orders_only_the_shortfall_is_sent(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    first, _ = order_place(user=trader, order=_order(stop_loss=None, take_profit=None))
    assert first.status == Order.Status.FILLED
    position = Position.objects.get(user=trader)
    ostium.price(Decimal(2100))
    response = bearer_client(trader).post(
        f"/api/v1/positions/{position.pk}/close", {"type": "market"}, format="json"
    )
    assert response.status_code in (200, 201, 202), response.json()
    assert ostium.usdc_of(wallet.address) == 150 * 10**6  # 100 + 50 paid out by the close

    # 100 more: the wallet holds it already, nothing is sent and nothing recorded.
    second, _ = order_place(user=trader, order=_order(stop_loss=None, take_profit=None))
    assert second.status == Order.Status.FILLED, (second.reject_code, second.reject_reason)
    assert _funding(second) == []
    assert ostium.usdc_of(wallet.address) == 50 * 10**6
    # 80 on the other side: the wallet holds 50, the station sends the 30 it lacks.
    third, _ = order_place(
        user=trader, order=_order(side="short", collateral=Decimal(80), stop_loss=None, take_profit=None)
    )
    assert third.status == Order.Status.FILLED, (third.reject_code, third.reject_reason)
    assert ostium.usdc_transfers_to(wallet.address)[1:] == [
        (ostium.storage, 150 * 10**6),
        (ostium.station, 30 * 10**6),
    ]
    assert _funding(third) == [("ostium", Decimal(-30)), (f"ostium:{wallet.address}", Decimal(30))]
    assert ostium.usdc_of(wallet.address) == 0
    assert _venue(f"ostium:{wallet.address}") == Decimal(130)
    assert ledger_check() == []


def test_a_gas_station_without_usdc_sends_nothing_and_the_order_is_rejected_with_its_collateral_back(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    ostium.chain.transfer_token(ostium.usdc, ostium.station, ostium.chain.deployer, STATION_USDC - 10**6)
    before = user_balances(user=trader)

    order, _ = order_place(user=trader, order=_order())

    assert order.status == Order.Status.REJECTED
    assert order.reject_code == "wallet_underfunded", order.reject_reason
    assert ostium.usdc_transfers_to(wallet.address) == []
    assert ostium.sent_by(wallet.address) == 0
    assert not LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND).exists()
    assert user_balances(user=trader) == before
    assert ledger_check() == []


def test_a_chain_without_a_gas_station_cannot_fund_the_wallet_and_the_order_is_rejected(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    providers = copy.deepcopy(settings.PROVIDERS)
    providers["chains"]["options"]["gas_station_keys"] = {}
    before = user_balances(user=trader)

    with override_settings(PROVIDERS=providers):
        registry.reset_cache()
        order, _ = order_place(user=trader, order=_order())
    registry.reset_cache()

    assert order.status == Order.Status.REJECTED
    assert order.reject_code == "wallet_underfunded"
    assert "no gas station" in order.reject_reason
    assert ostium.usdc_transfers_to(wallet.address) == []
    assert ostium.sent_by(wallet.address) == 0
    assert not LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND).exists()
    assert user_balances(user=trader) == before
    assert ledger_check() == []


def test_a_wallet_that_holds_the_collateral_already_trades_without_funding(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    ostium.chain.transfer_token(ostium.usdc, ostium.chain.deployer, wallet.address, 1_000 * 10**6)

    order, _ = order_place(user=trader, order=_order())

    assert order.status == Order.Status.FILLED
    assert ostium.usdc_of(wallet.address) == 900 * 10**6
    assert ostium.usdc_of(ostium.station) == STATION_USDC
    assert _funding(order) == []
    assert ledger_check() == []


def test_a_mined_transaction_that_reverted_rejects_the_order_with_ostiums_error(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    """The estimate passes, then the pair is delisted (price 0) before the transaction is
    mined: it reverts on chain (``PairNotListed``), the order is rejected, collateral back."""
    before = user_balances(user=trader)
    # The approval goes through first, with a first trade that closes again.
    first, _ = order_place(user=trader, order=_order())
    assert first.status == Order.Status.FILLED
    position = Position.objects.get(user=trader)
    bearer_client(trader).post(f"/api/v1/positions/{position.pk}/close", {"type": "market"}, format="json")
    balances = user_balances(user=trader)
    ostium.chain.send_eth(ostium.chain.deployer, wallet.address, 10**18)  # no gas top-up now
    rpc = ostium.chain.rpc_app
    rpc.hold("eth_sendRawTransaction")

    def delist_then_release() -> None:
        for _ in range(200):
            if rpc.held("eth_sendRawTransaction"):
                break
            threading.Event().wait(0.05)
        ostium.chain.set_ostium_price(ostium.trading, ETH, 0)
        rpc.release("eth_sendRawTransaction")

    helper = threading.Thread(target=delist_then_release)
    helper.start()
    try:
        order, _ = order_place(user=trader, order=_order(stop_loss=None, take_profit=None))
    finally:
        rpc.release("eth_sendRawTransaction")
        helper.join(timeout=15)

    assert order.status == Order.Status.REJECTED, order.status
    assert order.reject_code == "venue_rejected"
    assert "PairNotListed" in order.reject_reason
    receipt = ostium.chain.w3.eth.get_transaction_receipt(HexStr(order.venue_client_order_id))
    assert receipt["status"] == 0
    assert not ostium.is_open(wallet.address)
    assert user_balances(user=trader).available == balances.available
    assert balances.available < before.available  # the first trade's fees
    assert ledger_check() == []


def test_a_send_whose_estimate_reverts_rejects_the_order_naming_ostiums_error(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    before = user_balances(user=trader)
    assert price_get("ETHUSD").bid == PRICE
    ostium.chain.set_ostium_price(ostium.trading, ETH, 0)
    # Our quote still says 2000 (cached): the contract, not us, refuses the delisted pair.
    order, _ = order_place(user=trader, order=_order())

    assert order.status == Order.Status.REJECTED
    assert (order.reject_code, order.reject_reason) == (
        "venue_rejected",
        "the transaction would revert: PairNotListed",
    )
    assert user_balances(user=trader) == before
    # The wallet was funded before the trade's estimate: the USDC stays there, recorded, and
    # backs the next trade.
    assert ostium.usdc_of(wallet.address) == 100 * 10**6
    assert _funding(order) == [("ostium", Decimal(-100)), (f"ostium:{wallet.address}", Decimal(100))]
    assert ledger_check() == []


def test_leverage_above_the_pairs_overnight_maximum_is_refused_before_anything_is_sent(
    ostium: OstiumWorld, trader: Any, wallet: Wallet
) -> None:
    client = bearer_client(trader)
    response = client.post(
        "/api/v1/orders",
        {"symbol": "ETHUSD", "side": "long", "type": "market", "collateral": "100", "leverage": "60"},
        format="json",
    )

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "leverage_limit_exceeded"
    assert ostium.sent_by(wallet.address) == 0
    assert Order.objects.filter(user=trader).count() == 0
    assert ledger_check() == []
