"""LighterVenue against the stateful fake Lighter (``fake_lighter``): sub-accounts, transfers,
orders that are acknowledged first and filled later (account stream, or polling while it is
down), rejections, native stops, and the unit of the margin fractions.

Lighter's signer library is replaced by ``wire_signer``, which writes each transaction as the
library does (Lighter's field names) with a dummy ``Sig``; the L1 signatures are real
(EIP-191 by the master's Ethereum key) and checked by the fake.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django import db
from eth_account import Account
from pytest_httpserver import HTTPServer

from providers.base import OrderType, Side, VenueOrder, VenueOrderRequest, VenueOrderStatus
from providers.errors import ProviderError
from providers.models import LighterSubAccount
from providers.venues.lighter import signer
from providers.venues.lighter.adapter import (
    STOP_EXECUTION_MODE,
    LighterVenue,
    client_order_index,
    stop_client_order_id,
)
from tests.contract.lighter.fake_lighter import FakeLighter
from tests.contract.lighter.fake_stream import wait_until
from tests.contract.lighter.wire_signer import KEY_INDEX, PRIVATE_KEY, Signed, wire_signer_stand_ins

MASTER = 281
PUBLIC_KEY = "0x" + "ab" * 40
L1 = Account.from_key("0x" + "4c" * 32)  # a throwaway key, the master account's L1 owner

MakeVenue = Callable[..., LighterVenue]


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeLighter]:
    fake = FakeLighter(master=MASTER, api_key_index=KEY_INDEX, l1_address=L1.address)
    fake.fund(MASTER, Decimal(10_000))
    fake.serve(httpserver)
    fake.stream.start()
    yield fake
    fake.close()
    fake.stream.stop()


@pytest.fixture
def make_venue(httpserver: HTTPServer, fake: FakeLighter) -> Iterator[MakeVenue]:
    venues: list[LighterVenue] = []

    def make(**options: Any) -> LighterVenue:
        defaults = {
            "base_url": httpserver.url_for("/").rstrip("/"),
            "ws_url": fake.stream.url,
            "account_index": str(MASTER),
            "api_key_index": str(KEY_INDEX),
            "api_key_private_key": PRIVATE_KEY,
            "api_key_public_key": PUBLIC_KEY,
            "sub_accounts": "true",
            "l1_address": L1.address,
            "l1_private_key": L1.key.hex(),
            "timeout": "2",
            "backoff_seconds": "0.001",
            "stream_backoff_seconds": "0.05",
            "stream_max_backoff_seconds": "0.2",
            "order_poll_seconds": "0.05",
            "sub_account_wait_seconds": "2",
        }
        venue = LighterVenue(**{**defaults, **options})
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        venue.close()


@pytest.fixture
def wire_signer(monkeypatch: pytest.MonkeyPatch) -> Signed:
    """Stand-ins for Lighter's signer library writing its transactions' JSON."""
    signed: Signed = []
    for name, function in wire_signer_stand_ins(signed).items():
        monkeypatch.setattr(signer, name, function)
    return signed


def market_order(account_ref: str, client_order_id: str, **overrides: Any) -> VenueOrderRequest:
    fields: dict[str, Any] = {
        "account_ref": account_ref,
        "client_order_id": client_order_id,
        "symbol": "ETHUSD",
        "side": Side.LONG,
        "type": OrderType.MARKET,
        "collateral": Decimal(100),
        "leverage": Decimal(5),
    }
    return VenueOrderRequest(**{**fields, **overrides})


class Follower:
    """``follow_orders`` in a thread, collecting what it pushes."""

    def __init__(self, venue: LighterVenue, account_ref: str, ids: list[str]) -> None:
        self.orders: list[VenueOrder] = []
        self.live: list[bool] = []
        self.stop = threading.Event()

        def follow() -> None:
            try:
                venue.follow_orders(
                    account_ref=account_ref,
                    client_order_ids=lambda: ids,
                    on_order=self.orders.append,
                    stop=self.stop,
                    on_live=self.live.append,
                )
            finally:
                db.connection.close()  # this thread's own connection, as any worker thread would

        self.thread = threading.Thread(target=follow, daemon=True)
        self.thread.start()

    def final(self, client_order_id: str) -> VenueOrder:
        def done() -> VenueOrder | None:
            mine = [o for o in self.orders if o.client_order_id == client_order_id]
            return mine[-1] if mine and mine[-1].status not in {"pending", "open"} else None

        return wait_until(done, timeout=5, what=f"the outcome of {client_order_id}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def funded_sub_account(venue: LighterVenue, fake: FakeLighter, user_id: str, usdc: str = "500") -> str:
    ref = venue.ensure_account(user_id=user_id)
    venue.transfer_to_account(account_ref=ref, amount=Decimal(usdc))
    wait_until(lambda: fake.accounts[int(ref)].usdc == Decimal(usdc), what="the transfer")
    return ref


# --- sub-accounts ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_ensure_account_creates_one_sub_account_per_user_and_registers_the_api_key(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()

    first = venue.ensure_account(user_id="user-1")
    again = venue.ensure_account(user_id="user-1")

    assert first == again == str(MASTER * 1000 + 1)
    assert venue.account_ref(user_id="user-1", wallet_addresses=[]) == first
    assert fake.tx_types() == [9, 8]  # CreateSubAccount by the master, ChangePubKey in the sub-account
    change_pub_key = fake.txs[1][1]
    assert (change_pub_key["AccountIndex"], change_pub_key["ApiKeyIndex"]) == (int(first), KEY_INDEX)
    assert change_pub_key["PubKey"] == PUBLIC_KEY and change_pub_key["L1Sig"].startswith("0x")
    row = LighterSubAccount.objects.get(user_ref="user-1")
    assert (row.account_index, row.api_key_registered) == (int(first), True)


@pytest.mark.django_db
def test_account_ref_of_a_user_without_a_sub_account_is_a_conflict_and_calls_nothing(
    httpserver: HTTPServer, make_venue: MakeVenue
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_venue().account_ref(user_id="user-9", wallet_addresses=[])

    assert caught.value.status_code == 409 and "ensure_account" in caught.value.message
    assert httpserver.log == []


@pytest.mark.django_db(transaction=True)
def test_a_transfer_funds_the_sub_account_from_the_master(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    ref = venue.ensure_account(user_id="user-1")

    tx_hash = venue.transfer_to_account(account_ref=ref, amount=Decimal("250.5"))

    wait_until(lambda: fake.accounts[int(ref)].usdc == Decimal("250.5"), what="the transfer")
    assert fake.accounts[MASTER].usdc == Decimal("9749.5")
    assert len(tx_hash) == 80
    transfer = fake.txs[-1][1]
    assert (transfer["FromAccountIndex"], transfer["ToAccountIndex"], transfer["Amount"]) == (
        MASTER,
        int(ref),
        250_500_000,
    )


@pytest.mark.django_db(transaction=True)
def test_two_users_orders_land_in_their_own_sub_accounts_only(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    alice = funded_sub_account(venue, fake, "alice")
    bob = funded_sub_account(venue, fake, "bob")

    venue.place_order(order=market_order(alice, "alice-1"))
    venue.place_order(order=market_order(bob, "bob-1", side=Side.SHORT))

    wait_until(lambda: len(fake.orders) == 2, what="both orders executed")
    assert alice != bob
    assert [o["client_order_index"] for o in fake.orders_of(int(alice))] == [client_order_index("alice-1")]
    assert [o["client_order_index"] for o in fake.orders_of(int(bob))] == [client_order_index("bob-1")]
    assert fake.orders_of(MASTER) == []
    assert venue.order_updates(account_ref=alice, client_order_ids=["alice-1", "bob-1"])[
        0
    ].client_order_id == ("alice-1")
    assert [
        o.client_order_id for o in venue.order_updates(account_ref=alice, client_order_ids=["bob-1"])
    ] == []
    assert {p.side for p in venue.positions(account_ref=bob)} == {Side.SHORT}


# --- fills ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_order_is_pending_then_filled_from_the_account_stream(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    ref = funded_sub_account(venue, fake, "user-1")
    follower = Follower(venue, ref, ["order-1"])
    wait_until(lambda: follower.live == [True], what="the stream to be live")
    try:
        placed = venue.place_order(order=market_order(ref, "order-1"))
        filled = follower.final("order-1")
    finally:
        follower.close()

    assert placed.status == VenueOrderStatus.PENDING
    # 500 USD / 3024.66 = 0.1653 ETH, filled at the best ask
    assert filled == VenueOrder(
        venue_order_id=f"0:{client_order_index('order-1')}",
        client_order_id="order-1",
        status=VenueOrderStatus.FILLED,
        filled_size=Decimal("0.1653"),
        avg_fill_price=Decimal("3024.66"),
    )
    assert fake.stream.subscribed(0, f"account_all_orders/{ref}")
    assert [o.status for o in follower.orders].count(VenueOrderStatus.FILLED) == 1


@pytest.mark.django_db(transaction=True)
def test_while_the_stream_is_down_the_fill_arrives_by_polling(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    fake.stream.accepting = False
    venue = make_venue()
    ref = funded_sub_account(venue, fake, "user-1")
    follower = Follower(venue, ref, ["order-1"])
    try:
        venue.place_order(order=market_order(ref, "order-1"))
        filled = follower.final("order-1")
    finally:
        follower.close()

    assert (filled.status, filled.filled_size) == (VenueOrderStatus.FILLED, Decimal("0.1653"))
    assert True not in follower.live and fake.stream.refused > 0


@pytest.mark.django_db(transaction=True)
def test_an_order_the_account_cannot_margin_is_rejected_with_lighters_reason(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    ref = venue.ensure_account(user_id="user-1")  # never funded
    follower = Follower(venue, ref, ["order-1"])
    try:
        venue.place_order(order=market_order(ref, "order-1"))
        outcome = follower.final("order-1")
    finally:
        follower.close()

    assert outcome.status == VenueOrderStatus.REJECTED
    assert outcome.reject_reason == "canceled-margin-not-allowed"


@pytest.mark.django_db(transaction=True)
def test_a_refused_transaction_is_an_error_carrying_lighters_code_and_message(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    ref = venue.ensure_account(user_id="user-1")

    with pytest.raises(ProviderError) as caught:
        venue.transfer_to_account(account_ref=ref, amount=Decimal(1_000_000))

    error = caught.value
    assert error.status_code == 400 and not error.retryable
    assert error.response == {"code": 21701, "message": "not enough balance"}
    assert fake.accounts[int(ref)].usdc == 0


# --- native stops ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_native_stop_loss_rests_at_lighter_and_fires_when_the_price_crosses(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    ref = funded_sub_account(venue, fake, "user-1")
    stop_id = stop_client_order_id("order-1", "stop_loss")
    follower = Follower(venue, ref, ["order-1", stop_id])
    try:
        venue.place_order(order=market_order(ref, "order-1", stop_loss=Decimal("2900")))
        follower.final("order-1")
        stop = wait_until(
            lambda: fake.order(int(ref), client_order_index(stop_id)), what="the stop at Lighter"
        )
        assert (stop["type"], stop["reduce_only"], stop["is_ask"]) == ("stop-loss", True, True)
        assert (stop["trigger_price"], stop["status"]) == ("2900.00", "pending")

        fake.set_price(0, Decimal("2950"))
        assert fake.order(int(ref), client_order_index(stop_id))["status"] == "pending"  # type: ignore[index]
        fake.set_price(0, Decimal("2899.5"))
        fired = follower.final(stop_id)
    finally:
        follower.close()

    assert STOP_EXECUTION_MODE == "native"
    assert (fired.status, fired.filled_size, fired.avg_fill_price) == (
        VenueOrderStatus.FILLED,
        Decimal("0.1653"),
        Decimal("2899.5"),
    )
    assert venue.positions(account_ref=ref) == []


def test_a_stop_on_the_wrong_side_of_the_price_is_refused_before_anything_is_sent(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue(sub_accounts="false")

    with pytest.raises(ProviderError) as caught:
        venue.place_order(order=market_order("", "order-1", stop_loss=Decimal("3100")))

    assert caught.value.status_code == 400 and "below" in caught.value.message
    assert fake.txs == []


@pytest.mark.django_db(transaction=True)
def test_closing_the_position_cancels_its_resting_stops(
    fake: FakeLighter, make_venue: MakeVenue, wire_signer: list[tuple[int, dict[str, Any]]]
) -> None:
    venue = make_venue()
    ref = funded_sub_account(venue, fake, "user-1")
    venue.place_order(
        order=market_order(ref, "order-1", stop_loss=Decimal("2900"), take_profit=Decimal("3300"))
    )
    wait_until(lambda: len(fake.orders_of(int(ref))) == 3, what="the order and its stops")

    venue.close_position(account_ref=ref, venue_position_id="0")

    wait_until(lambda: venue.positions(account_ref=ref) == [], what="the close")
    stops = [o for o in fake.orders_of(int(ref)) if o["type"] in {"stop-loss", "take-profit"}]
    assert sorted(o["type"] for o in stops) == ["stop-loss", "take-profit"]
    wait_until(lambda: all(o["status"] == "canceled" for o in fake.orders_of(int(ref))
                           if o["type"] != "market"), what="the stops cancelled")  # fmt: skip


# --- margin fractions -----------------------------------------------------------------


def test_max_leverage_reads_min_initial_margin_fraction_as_1e4_ticks(
    fake: FakeLighter, make_venue: MakeVenue
) -> None:
    markets = {m.symbol: m.max_leverage for m in make_venue(sub_accounts="false").markets()}

    # captured shape: integers, 400 / 200 / 333 -> 4 %, 2 %, 3.33 %
    assert markets == {"ETHUSD": Decimal(25), "BTCUSD": Decimal(50), "SOLUSD": Decimal("30.03")}


def test_a_margin_fraction_in_another_unit_is_refused_as_malformed(
    fake: FakeLighter, make_venue: MakeVenue
) -> None:
    fake.details["order_book_details"][0]["min_initial_margin_fraction"] = "0.04"

    with pytest.raises(ProviderError) as caught:
        make_venue(sub_accounts="false").markets()

    assert "min_initial_margin_fraction" in caught.value.message
