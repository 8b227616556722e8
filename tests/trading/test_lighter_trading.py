"""Trading on Lighter end to end, against the stateful fake Lighter (``fake_lighter``): the
"lighter" provider configured through a ``ProviderConfig`` version, ETHUSD routed to it, orders
placed over the HTTP API. Each user trades from a sub-account of their own, opened on their
first order and funded per order by a transfer the ledger records; outcomes arrive on the
account stream (the venue follower running) or by polling (``orders_reconcile``) while the
stream is down; stop-loss and take-profit are Lighter's own trigger orders.

Lighter's signer library is replaced by the contract tests' ``wire_signer``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django_redis import get_redis_connection
from pytest_httpserver import HTTPServer

from conftest import bearer_client
from ledger.checks import ledger_check
from ledger.models import LedgerAccount, LedgerTransaction
from ledger.selectors import user_balances
from ledger.services import balance_adjust
from pricing.services.pairs import pairs_sync
from providers import registry
from providers.models import LighterSubAccount, RoutingRule
from providers.services.configs import provider_config_create
from providers.services.routing import routing_rule_create
from providers.venues.lighter.adapter import client_order_index
from tests.accounts.factories import UserFactory
from tests.contract.lighter.fake_lighter import FakeLighter
from tests.contract.lighter.fake_stream import wait_until
from tests.contract.lighter.test_lighter_accounts import (  # noqa: F401 - the fixture
    KEY_INDEX,
    L1,
    MASTER,
    PRIVATE_KEY,
    PUBLIC_KEY,
    wire_signer,
)
from trading.follower import VenueFollower
from trading.models import Fill, Order, Position, ProtectiveOrder, ReconciliationDrift
from trading.services.orders import orders_reconcile
from trading.services.reconciliation import reconciliation_run
from trading.services.venues import VENUE_ACCOUNT_FUND, venue_account_prepare
from trading.triggers.index import SETS, index_key

pytestmark = pytest.mark.django_db(transaction=True)

ETH = 0  # Lighter's ETH market: best bid 3024.12, best ask 3024.66 in the fake's book
ETH_ORDER = {"symbol": "ETHUSD", "side": "long", "type": "market", "collateral": "100", "leverage": "5"}


def _forget_prices() -> None:
    redis = get_redis_connection("default")
    for pattern in ("marqetfi:price:*", "marqetfi:triggers:*", "marqetfi:breaker:*"):
        for key in redis.scan_iter(pattern):
            redis.delete(key)


@pytest.fixture
def fake(httpserver: HTTPServer) -> Iterator[FakeLighter]:
    # Lighter executes after acknowledging; a delay the first look-up after sending misses.
    fake = FakeLighter(master=MASTER, api_key_index=KEY_INDEX, l1_address=L1.address, execution_delay=0.3)
    fake.fund(MASTER, Decimal(10_000))
    fake.serve(httpserver)
    fake.stream.start()
    yield fake
    fake.close()
    fake.stream.stop()


@pytest.fixture
def lighter(
    transactional_db: None,
    httpserver: HTTPServer,
    fake: FakeLighter,
    wire_signer: list[tuple[int, dict[str, Any]]],  # noqa: F811 - the fixture imported above
) -> Iterator[FakeLighter]:
    """The "lighter" provider pointed at the fake by a configuration version, ETHUSD routed to it."""
    _forget_prices()
    registry.reset_cache()
    provider_config_create(
        name="lighter",
        values={
            "base_url": httpserver.url_for("/").rstrip("/"),
            "ws_url": fake.stream.url,
            "account_index": str(MASTER),
            "api_key_index": str(KEY_INDEX),
            "api_key_public_key": PUBLIC_KEY,
            "sub_accounts": "true",
            "l1_address": L1.address,
            "timeout": "2",
            "backoff_seconds": "0.001",
            "stream_backoff_seconds": "0.05",
            "stream_max_backoff_seconds": "0.2",
            "order_poll_seconds": "0.05",
            "sub_account_wait_seconds": "3",
        },
        secrets={"api_key_private_key": PRIVATE_KEY, "l1_private_key": L1.key.hex()},
    )
    routing_rule_create(match=RoutingRule.Match.SYMBOL, value="ETHUSD", venues=["lighter"])
    pairs_sync(provider="lighter")
    yield fake
    registry.reset_cache()
    _forget_prices()


@pytest.fixture
def follower(lighter: FakeLighter) -> Iterator[VenueFollower]:
    """``manage.py venuefollow`` in a thread."""
    running = VenueFollower(interval=0.05, linger=0.5)
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.stop_event.set()
    thread.join(10)


def _trader() -> Any:
    user: Any = UserFactory()
    balance_adjust(user=user, amount=Decimal("1000"), reason="test funding", actor=None)
    return user


@pytest.fixture
def trader(lighter: FakeLighter) -> Any:
    return _trader()


def place(user: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = bearer_client(user).post("/api/v1/orders", body, format="json")
    assert response.status_code == 201, response.json()
    data: dict[str, Any] = response.json()
    return data


def settled(order_id: str) -> Callable[[], Order | None]:
    def check() -> Order | None:
        order = Order.objects.get(pk=order_id)
        return order if order.status not in (Order.Status.PENDING, Order.Status.UNKNOWN) else None

    return check


def sub_account(user: Any) -> int:
    return LighterSubAccount.objects.get(user_ref=str(user.pk)).account_index


def venue_account(name: str) -> Decimal:
    return LedgerAccount.objects.get(user__isnull=True, kind=LedgerAccount.Kind.VENUE, name=name).balance


# --- (a) pending, then filled from the account stream -----------------------------------------


def test_a_market_order_is_pending_then_filled_from_the_account_stream(trader, follower, lighter):
    placed = place(trader, ETH_ORDER)

    assert placed["status"] == "pending" and placed["provider"] == "lighter"
    order = wait_until(settled(placed["id"]), timeout=10, what="the fill from the stream")
    account = sub_account(trader)
    assert lighter.stream.account_subscribers.get(account)  # the follower is on the account channel
    venue_order = lighter.order(account, client_order_index(placed["id"]))
    assert venue_order is not None and venue_order["status"] == "filled"
    # 500 USD / 3024.66 = 0.1653 ETH at the best ask: the fake's price and size, not ours
    assert (order.status, order.filled_size, order.avg_fill_price) == (
        Order.Status.FILLED,
        Decimal(venue_order["filled_base_amount"]),
        Decimal("3024.66"),
    )
    position = Position.objects.get(pk=order.position_id)
    assert (position.size, position.entry_price, position.account_ref) == (
        Decimal("0.1653"),
        Decimal("3024.66"),
        str(account),
    )
    balances = user_balances(user=trader)
    assert (balances.available, balances.margin) == (Decimal("1000") - 100 - order.fee, Decimal("100"))
    assert order.fee == Decimal("0.25")  # 5 bps of 500
    assert Fill.objects.filter(order=order).count() == 1
    assert ledger_check() == []


# --- (b) the stream down: filled by polling ---------------------------------------------------


def test_with_the_stream_down_the_order_is_filled_by_polling(trader, lighter):
    lighter.stream.stop()  # no follower, no stream: only the beat's reconciliation

    placed = place(trader, ETH_ORDER)
    assert placed["status"] == "pending"

    def polled() -> Order | None:
        orders_reconcile()
        return settled(placed["id"])()

    order = wait_until(polled, timeout=10, what="the fill found by polling")
    assert (order.status, order.filled_size, order.avg_fill_price) == (
        Order.Status.FILLED,
        Decimal("0.1653"),
        Decimal("3024.66"),
    )
    assert Position.objects.get(pk=order.position_id).size == Decimal("0.1653")
    assert Fill.objects.filter(order=order).count() == 1
    assert orders_reconcile() == 0  # nothing left to settle, nothing recorded twice
    assert ledger_check() == []


def test_the_follower_polls_while_the_stream_is_down_and_the_fill_is_recorded_once(trader, lighter):
    lighter.stream.stop()
    running = VenueFollower(interval=0.05, linger=0.5)
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    try:
        placed = place(trader, ETH_ORDER)
        order = wait_until(settled(placed["id"]), timeout=10, what="the fill found by the follower's polling")
        orders_reconcile(older_than=timedelta(0))
    finally:
        running.stop_event.set()
        thread.join(10)

    assert order.status == Order.Status.FILLED
    assert Fill.objects.filter(order=order).count() == 1
    assert Position.objects.get(pk=order.position_id).size == Decimal("0.1653")
    assert ledger_check() == []


# --- (c) a rejection gives the collateral back ------------------------------------------------


def test_a_margin_rejection_rejects_the_order_and_releases_the_collateral(trader, follower, lighter):
    lighter.refuse_margin = True

    placed = place(trader, ETH_ORDER)
    order = wait_until(settled(placed["id"]), timeout=10, what="the rejection")

    assert order.status == Order.Status.REJECTED
    assert (order.reject_code, order.reject_reason) == ("venue_rejected", "canceled-margin-not-allowed")
    balances = user_balances(user=trader)
    assert (balances.available, balances.margin) == (Decimal("1000"), Decimal("0"))
    assert not Position.objects.filter(user=trader).exists()
    body = bearer_client(trader).get(f"/api/v1/orders/{placed['id']}").json()
    assert body["status"] == "rejected"
    assert ledger_check() == []


# --- (d) a native stop-loss fires at the venue ------------------------------------------------


def test_a_native_stop_loss_fires_at_lighter_and_closes_the_position_here(trader, follower, lighter):
    placed = place(trader, {**ETH_ORDER, "stop_loss": "2900", "take_profit": "3200"})
    order = wait_until(settled(placed["id"]), timeout=10, what="the fill")
    account = sub_account(trader)

    def both_resting() -> bool:
        types = {o["type"]: o["status"] for o in lighter.orders_of(account)}
        return types.get("stop-loss") == "pending" and types.get("take-profit") == "pending"

    wait_until(both_resting, timeout=5, what="both trigger orders at the venue")
    client = bearer_client(trader)
    shown = client.get(f"/api/v1/positions/{order.position_id}").json()
    modes = {p["kind"]: p["execution_mode"] for p in shown["protective_orders"]}
    assert modes == {"stop_loss": "native", "take_profit": "native"}
    shown_order = client.get(f"/api/v1/orders/{placed['id']}").json()
    assert shown_order["execution_mode"] == {"stop_loss": "native", "take_profit": "native"}
    stop_loss = ProtectiveOrder.objects.get(position_id=order.position_id, kind="stop_loss", status="armed")
    take_profit = ProtectiveOrder.objects.get(
        position_id=order.position_id, kind="take_profit", status="armed"
    )
    assert stop_loss.venue_client_order_id == str(stop_loss.pk)
    assert lighter.order(account, client_order_index(stop_loss.venue_client_order_id)) is not None
    redis = get_redis_connection("default")
    assert not any(
        redis.zscore(index_key("ETHUSD", name), f"p:{stop_loss.pk}") for name in SETS
    )  # not in our trigger engine

    lighter.set_price(ETH, Decimal("2890"))  # Lighter fires the stop-loss

    position = wait_until(
        lambda: Position.objects.filter(pk=order.position_id, status="closed").first(),
        timeout=10,
        what="the position closed here",
    )
    stop_loss.refresh_from_db()
    take_profit.refresh_from_db()
    assert (stop_loss.status, stop_loss.fired_price) == ("fired", Decimal("2890"))
    assert take_profit.status == "cancelled"
    wait_until(
        lambda: (
            lighter.order(account, client_order_index(take_profit.venue_client_order_id))["status"]
            == "canceled"
        ),
        timeout=5,
        what="the take-profit cancelled at Lighter",
    )
    close = Fill.objects.get(position=position, kind="close")
    assert (close.size, close.price) == (Decimal("0.1653"), Decimal("2890"))
    assert close.order is not None and close.order.closed_by == "stop_loss"
    pnl = (Decimal("2890") - Decimal("3024.66")) * Decimal("0.1653")
    assert close.realized_pnl == pnl.quantize(Decimal("0.000001"))
    balances = user_balances(user=trader)
    assert balances.margin == 0
    assert balances.available == Decimal("1000") - order.fee + close.realized_pnl - close.fee
    assert Fill.objects.filter(position=position).count() == 2  # recorded once
    assert ledger_check() == []


# --- (e) each user in their own sub-account ---------------------------------------------------


def test_each_users_trades_land_in_their_own_sub_account_each_funded_by_a_recorded_transfer(
    follower, lighter
):
    alice, bob = _trader(), _trader()

    first = place(alice, ETH_ORDER)
    second = place(bob, {**ETH_ORDER, "side": "short"})
    third = place(alice, {**ETH_ORDER, "collateral": "50"})
    orders = [wait_until(settled(o["id"]), timeout=10, what="the fills") for o in (first, second, third)]

    assert [o.status for o in orders] == [Order.Status.FILLED] * 3
    a, b = sub_account(alice), sub_account(bob)
    assert a != b and MASTER not in (a, b)
    assert sorted(o["client_order_index"] for o in lighter.orders_of(a)) == sorted(
        [client_order_index(first["id"]), client_order_index(third["id"])]
    )
    assert [o["client_order_index"] for o in lighter.orders_of(b)] == [client_order_index(second["id"])]
    assert lighter.orders_of(MASTER) == []
    assert {p.account_ref for p in Position.objects.filter(user=alice)} == {str(a)}
    assert {p.account_ref for p in Position.objects.filter(user=bob)} == {str(b)}
    # One transfer per order, each mirrored once in the ledger: the platform's Lighter account
    # gives, the user's sub-account receives, no user balance moves.
    funding = LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND)
    assert sorted(funding.values_list("reference", flat=True)) == sorted(f"order:{o.pk}" for o in orders)
    transfers = [tx for tx_type, tx in lighter.txs if tx_type == 12]
    assert sorted((t["ToAccountIndex"], t["Amount"]) for t in transfers) == sorted(
        [(a, 100_250_000), (b, 100_250_000), (a, 50_125_000)]  # collateral + 5 bps fee
    )
    assert venue_account(f"lighter:{a}") == Decimal("150.375")
    assert venue_account(f"lighter:{b}") == Decimal("100.25")
    assert venue_account("lighter") == Decimal("-250.625")
    assert lighter.accounts[a].usdc == Decimal("150.375")

    # Funding again for an order already funded (a retry) sends nothing and records nothing.
    venue_account_prepare(order=orders[0], provider="lighter")
    assert len([t for t, _ in lighter.txs if t == 12]) == 3
    assert funding.count() == 3
    assert ledger_check() == []


def test_changing_and_clearing_a_native_stop_replaces_and_cancels_it_at_lighter(trader, follower, lighter):
    placed = place(trader, {**ETH_ORDER, "stop_loss": "2900"})
    order = wait_until(settled(placed["id"]), timeout=10, what="the fill")
    account = sub_account(trader)
    first = ProtectiveOrder.objects.get(position_id=order.position_id, kind="stop_loss", status="armed")
    assert first.execution_mode == "native"
    client = bearer_client(trader)

    moved = client.patch(f"/api/v1/positions/{order.position_id}", {"stop_loss": "2950"}, format="json")

    assert moved.status_code == 200, moved.json()
    second = ProtectiveOrder.objects.get(position_id=order.position_id, kind="stop_loss", status="armed")
    assert (second.execution_mode, second.trigger_price) == ("native", Decimal("2950"))

    def venue_status(protective: ProtectiveOrder) -> str | None:
        found = lighter.order(account, client_order_index(protective.venue_client_order_id))
        return None if found is None else str(found["status"])

    wait_until(lambda: venue_status(first) == "canceled", timeout=5, what="the old stop cancelled")
    wait_until(lambda: venue_status(second) == "pending", timeout=5, what="the new stop resting")

    cleared = client.patch(f"/api/v1/positions/{order.position_id}", {"stop_loss": None}, format="json")

    assert cleared.status_code == 200, cleared.json()
    assert cleared.json()["stop_loss"] is None
    wait_until(lambda: venue_status(second) == "canceled", timeout=5, what="the stop cancelled")
    lighter.set_price(ETH, Decimal("2800"))  # nothing rests at Lighter any more: nothing fires
    assert [o["status"] for o in lighter.orders_of(account) if o["type"] == "stop-loss"] == ["canceled"] * 2
    assert Position.objects.get(pk=order.position_id).status == "open"
    assert ledger_check() == []


def test_a_transfer_lighter_refuses_rejects_the_order_and_records_no_funding(trader, lighter):
    lighter.accounts[MASTER].usdc = Decimal(0)  # the platform's master account is empty

    placed = place(trader, ETH_ORDER)

    assert placed["status"] == "rejected" and placed["reject_code"] == "venue_rejected"
    assert "not enough balance" in placed["reject_reason"]
    assert sub_account(trader)  # the sub-account is there for the next order
    assert not LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND).exists()
    assert [tx_type for tx_type, _ in lighter.txs if tx_type in (12, 14)] == []
    balances = user_balances(user=trader)
    assert (balances.available, balances.margin) == (Decimal("1000"), Decimal("0"))
    assert ledger_check() == []


def test_a_close_is_pending_at_lighter_then_settled_from_the_stream_with_its_stops_gone(
    trader, follower, lighter
):
    placed = place(trader, {**ETH_ORDER, "stop_loss": "2900"})
    order = wait_until(settled(placed["id"]), timeout=10, what="the fill")
    account = sub_account(trader)
    lighter.set_price(ETH, Decimal("3100"))

    closed = bearer_client(trader).post(
        f"/api/v1/positions/{order.position_id}/close", {"type": "market"}, format="json"
    )

    assert closed.status_code == 201, closed.json()
    close = wait_until(settled(closed.json()["id"]), timeout=10, what="the close filled")
    assert (close.status, close.filled_size, close.avg_fill_price) == (
        Order.Status.FILLED,
        Decimal("0.1653"),
        Decimal("3100"),
    )
    position = Position.objects.get(pk=order.position_id)
    assert position.status == "closed"
    assert position.realized_pnl == ((Decimal("3100") - Decimal("3024.66")) * Decimal("0.1653")).quantize(
        Decimal("0.000001")
    )
    assert lighter.accounts[account].positions[ETH][0] == 0
    stop = ProtectiveOrder.objects.get(position=position, kind="stop_loss")
    assert stop.status == "cancelled"
    wait_until(
        lambda: (
            lighter.order(account, client_order_index(stop.venue_client_order_id))["status"] == "canceled"
        ),
        timeout=5,
        what="the stop cancelled at Lighter with the close",
    )
    assert Fill.objects.filter(position=position, kind="close").count() == 1
    assert user_balances(user=trader).margin == 0
    assert ledger_check() == []


# --- reconciliation of native stops -----------------------------------------------------------


def test_reconciliation_counts_native_stops_as_ours_and_finds_one_lighter_no_longer_holds(trader, lighter):
    lighter.stream.stop()  # no follower: what Lighter does to the stops is known only by reconciling

    placed = place(trader, {**ETH_ORDER, "stop_loss": "2900", "take_profit": "3200"})

    def polled() -> Order | None:
        orders_reconcile()
        return settled(placed["id"])()

    order = wait_until(polled, timeout=10, what="the fill found by polling")
    account = sub_account(trader)
    stop_loss = ProtectiveOrder.objects.get(position_id=order.position_id, kind="stop_loss", status="armed")
    assert stop_loss.execution_mode == "native"
    wait_until(
        lambda: len(registry.venue("lighter").open_orders(account_ref=str(account))) == 2,
        timeout=5,
        what="both trigger orders resting at Lighter",
    )

    assert reconciliation_run(order_grace=timedelta(0)).as_dict()["drifts_found"] == 0

    # Lighter drops the stop-loss on its own (an expiry, an operator at the venue).
    with lighter._lock:
        dropped = next(
            o
            for o in lighter.orders
            if o["client_order_index"] == client_order_index(stop_loss.venue_client_order_id)
        )
        dropped.update(status="canceled-expired", trigger_status="na")

    summary = reconciliation_run(order_grace=timedelta(0)).as_dict()

    [drift] = ReconciliationDrift.objects.all()
    assert (drift.kind, drift.our_ref, drift.account_ref, drift.status, summary["drifts_opened"]) == (
        "order_missing_at_venue",
        str(stop_loss.pk),
        str(account),
        "open",
        1,
    )
    assert (drift.details["kind"], drift.details["execution_mode"]) == ("stop_loss", "native")
    assert ledger_check() == []


def test_a_position_that_grows_has_its_native_stops_placed_again_for_its_whole_size(
    trader, follower, lighter
):
    first = place(trader, {**ETH_ORDER, "stop_loss": "2900", "take_profit": "3200"})
    order = wait_until(settled(first["id"]), timeout=10, what="the first fill")
    account = sub_account(trader)
    old_stop = ProtectiveOrder.objects.get(position_id=order.position_id, kind="stop_loss", status="armed")
    wait_until(
        lambda: (
            (lighter.order(account, client_order_index(old_stop.venue_client_order_id)) or {}).get("status")
            == "pending"
        ),
        timeout=5,
        what="the stop-loss resting at Lighter",
    )

    second = place(trader, ETH_ORDER)  # more of the same position, no stops asked
    wait_until(settled(second["id"]), timeout=10, what="the second fill")

    position = Position.objects.get(pk=order.position_id)
    assert position.size == Decimal("0.1653") * 2
    armed = {p.kind: p for p in ProtectiveOrder.objects.filter(position=position, status="armed")}
    assert {
        k: (p.execution_mode, p.trigger_price) for k, p in armed.items() if k in ("stop_loss", "take_profit")
    } == {
        "stop_loss": ("native", Decimal(2900)),
        "take_profit": ("native", Decimal(3200)),
    }
    for kind in ("stop_loss", "take_profit"):
        venue_id = client_order_index(armed[kind].venue_client_order_id)
        resting = wait_until(
            lambda venue_id=venue_id: lighter.order(account, venue_id), timeout=5, what=f"the new {kind}"
        )
        assert Decimal(resting["initial_base_amount"]) == position.size
    wait_until(
        lambda: (
            lighter.order(account, client_order_index(old_stop.venue_client_order_id))["status"] == "canceled"
        ),
        timeout=5,
        what="the stop for the old size cancelled at Lighter",
    )
    assert ledger_check() == []


# --- a venue that hangs: the answer within the timeout, the outcome from the reconciler ---------


def test_a_lighter_hanging_on_the_order_answers_within_the_timeout_then_the_fill_is_reconciled(
    trader, lighter, monkeypatch
):
    """Lighter takes the order but answers after our 2 s timeout: the client gets its answer
    (the order ``unknown``) without waiting for Lighter, the order is never sent twice, and
    asking Lighter by client id settles it."""
    lighter.stream.stop()
    send = lighter._send_tx
    answered_late = threading.Event()

    def send_then_hang(tx_type: int, tx: dict[str, Any]) -> Any:
        answer = send(tx_type, tx)
        if tx_type == 14:  # CreateOrder: executed, then the answer is late
            time.sleep(3)
            answered_late.set()
        return answer

    monkeypatch.setattr(lighter, "_send_tx", send_then_hang)
    started = time.monotonic()
    placed = place(trader, ETH_ORDER)
    answered_in = time.monotonic() - started

    assert placed["status"] == "unknown"
    assert answered_in < 6, answered_in  # the 2 s timeout, not Lighter's 3 s, plus set-up calls
    monkeypatch.setattr(lighter, "_send_tx", send)
    assert answered_late.wait(10)  # the fake serves one request at a time

    def polled() -> Order | None:
        orders_reconcile(older_than=timedelta(0))
        return settled(placed["id"])()

    order = wait_until(polled, timeout=15, what="the fill found by asking Lighter")
    assert (order.status, order.reject_code) == (Order.Status.FILLED, "")
    assert [tx_type for tx_type, _ in lighter.txs].count(14) == 1  # sent once
    assert Fill.objects.filter(order=order).count() == 1
    assert ledger_check() == []
