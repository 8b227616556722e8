"""Reconciliation against the Lighter fake and the Ostium stand-in on the local chain: the
registry serves a ``LighterVenue`` / ``OstiumVenue`` built against them (the contract tests'
fixtures), our book holds the user's positions and orders under the venue's account, and the
drift the fakes are given is found once, counted after, and alerted (or, for a fill, repaired)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from ledger.checks import ledger_check
from marqetfi.core.models import OperatorAlert
from pricing.services.pairs import pairs_sync
from providers import registry
from providers.base import Side, Venue, VenuePosition, WalletInfo
from providers.models import RoutingRule
from providers.services.routing import routing_rule_update
from providers.venues.lighter.adapter import LighterVenue
from tests.contract.lighter.fake_lighter import FakeLighter
from tests.contract.lighter.fake_stream import wait_until
from tests.contract.lighter.test_lighter_accounts import (  # noqa: F401 - fixtures
    MakeVenue,
    fake,
    funded_sub_account,
    make_venue,
    wire_signer,
)
from tests.contract.ostium.test_ostium_local_chain import (  # noqa: F401 - fixture
    EURUSD,
    PRICE,
    Ostium,
    _open,
    _trader,
    ostium,
)
from trading.models import Fill, Order, Position, ReconciliationDrift
from trading.services.orders import OrderTerms, order_place
from trading.services.reconciliation import reconciliation_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_exact_after() -> Iterator[None]:
    """Reconciliation and its repairs keep the ledger exact: checked after every test."""
    yield
    assert ledger_check() == []


ETH, BTC = 0, 1  # Lighter's market ids

_SERVED: dict[str, Venue] = {}


def served_venue(*, name: str) -> Venue:
    """The registry's adapter class for the venues below: the one the test built."""
    return _SERVED[name]


def _serving(name: str, venue: Venue) -> Any:
    _SERVED[name] = venue
    catalogue = copy.deepcopy(settings.PROVIDERS)
    catalogue[name] = {
        **catalogue[name],
        "class": f"{__name__}.served_venue",
        "options": {"name": name},
        "secret_fields": [],
    }
    return override_settings(PROVIDERS=catalogue)


def run() -> dict[str, Any]:
    return reconciliation_run(order_grace=timedelta(0)).as_dict()


def drifts(**filters: Any) -> list[ReconciliationDrift]:
    return list(ReconciliationDrift.objects.filter(**filters).order_by("kind", "symbol"))


def alerts() -> list[tuple[str, str]]:
    return sorted(
        (alert.code, alert.reference) for alert in OperatorAlert.objects.filter(source="reconciliation")
    )


def held(
    user: Any, provider: str, account_ref: str, symbol: str, side: str, size: str, entry: str
) -> Position:
    """A position in our book (the venue's account ``account_ref``)."""
    return Position.objects.create(
        user=user,
        symbol=symbol,
        category="crypto" if provider == "lighter" else "forex",
        side=side,
        provider=provider,
        account_ref=account_ref,
        size=Decimal(size),
        entry_price=Decimal(entry),
        collateral=Decimal(100),
        leverage=Decimal(10),
        liquidation_level=Decimal("0.1"),
        margin_call_level=Decimal("0.5"),
    )


# --- Lighter ----------------------------------------------------------------------------


@pytest.fixture
def lighter(
    fake: FakeLighter,  # noqa: F811
    make_venue: MakeVenue,  # noqa: F811
    wire_signer: Any,  # noqa: F811
    paper_market: None,
) -> Iterator[LighterVenue]:
    venue = make_venue()
    with _serving("lighter", venue):
        registry.reset_cache()
        yield venue
    _SERVED.clear()
    registry.reset_cache()


@pytest.fixture
def lighter_account(lighter: LighterVenue, fake: FakeLighter, trader: Any) -> str:  # noqa: F811
    """The trader's Lighter sub-account, funded."""
    return funded_sub_account(lighter, fake, str(trader.pk))


def test_lighter_positions_that_differ_are_each_found_once_then_counted(
    lighter_account: str,
    fake: FakeLighter,  # noqa: F811 - the imported fixture
    trader: Any,
) -> None:
    account = fake.accounts[int(lighter_account)]
    account.positions[ETH] = (Decimal("0.5"), Decimal("3000"))  # the same in both books
    account.positions[BTC] = (Decimal("-0.02"), Decimal("64000"))  # only at Lighter
    account.positions[2] = (Decimal("3"), Decimal("150"))  # SOL: we hold 2
    agreed = held(trader, "lighter", lighter_account, "ETHUSD", "long", "0.5", "3000")
    ours_only = held(trader, "lighter", lighter_account, "ETHUSD", "short", "1", "3000")
    smaller = held(trader, "lighter", lighter_account, "SOLUSD", "long", "2", "150")

    first = run()
    second = run()

    found = drifts()
    assert [(d.kind, d.symbol, d.our_ref, d.occurrences, d.status) for d in found] == [
        ("extra_at_venue", "BTCUSD", "", 2, "open"),
        ("missing_at_venue", "ETHUSD", str(ours_only.pk), 2, "open"),
        ("size_mismatch", "SOLUSD", str(smaller.pk), 2, "open"),
    ]
    assert {d.account_ref for d in found} == {lighter_account}
    assert found[0].details | {"side": "short", "venue_size": "0.02"} == found[0].details
    assert (Decimal(found[2].details["our_size"]), Decimal(found[2].details["venue_size"])) == (2, 3)
    assert (first["drifts_opened"], second["drifts_opened"], second["drifts_found"]) == (3, 0, 3)
    assert alerts() == sorted((d.kind, f"drift:{d.pk}") for d in found)
    assert not ReconciliationDrift.objects.filter(our_ref=str(agreed.pk)).exists()


def test_a_lighter_order_we_wait_for_that_filled_there_is_recorded_once(
    lighter_account: str,
    fake: FakeLighter,  # noqa: F811 - the imported fixture
    trader: Any,
    drive: Any,
) -> None:
    drive(ETHUSD="3000")
    rule = RoutingRule.objects.get(match=RoutingRule.Match.CATEGORY, value="crypto")
    routing_rule_update(rule_id=rule.pk, venues=["lighter"])
    pairs_sync(provider="lighter")
    fake.execution_delay = 1.0  # still pending when the order path asks
    order, _ = order_place(
        user=trader,
        order=OrderTerms(
            symbol="ETHUSD", side="long", type="market", collateral=Decimal(100), leverage=Decimal(5)
        ),
    )
    assert (order.status, order.provider, order.reject_reason) == ("pending", "lighter", "")
    wait_until(
        lambda: [o["status"] for o in fake.orders_of(int(lighter_account))] == ["filled"],
        what="Lighter's fill",
    )
    order.refresh_from_db()
    assert order.status == "pending"  # our book has not heard of the fill

    first = run()
    second = run()

    order.refresh_from_db()
    assert order.status == "filled"
    assert Fill.objects.filter(order=order).count() == 1
    [position] = Position.objects.filter(user=trader, status="open")
    venue_size, _ = fake.accounts[int(lighter_account)].positions[ETH]
    assert (position.symbol, position.side, position.size, position.account_ref) == (
        "ETHUSD",
        "long",
        venue_size,
        lighter_account,
    )
    [drift] = drifts()
    assert (drift.kind, drift.status, drift.our_ref) == ("order_filled_at_venue", "repaired", str(order.pk))
    assert (first["drifts_repaired"], second["drifts_repaired"], second["drifts_found"]) == (1, 0, 0)
    assert alerts() == []
    assert ledger_check() == []


def test_a_lighter_entry_price_beyond_the_tolerance_is_a_price_mismatch(
    lighter_account: str,
    fake: FakeLighter,  # noqa: F811 - the imported fixture
    trader: Any,
) -> None:
    fake.accounts[int(lighter_account)].positions[ETH] = (Decimal("0.5"), Decimal("3100"))
    position = held(trader, "lighter", lighter_account, "ETHUSD", "long", "0.5", "3000")

    run()

    [drift] = drifts()
    assert (drift.kind, drift.symbol, drift.our_ref, drift.status) == (
        "price_mismatch",
        "ETHUSD",
        str(position.pk),
        "open",
    )
    assert Decimal(drift.details["venue_entry_price"]) == Decimal(3100)
    assert alerts() == [("price_mismatch", f"drift:{drift.pk}")]


def test_a_lighter_order_only_the_venue_holds_is_extra_and_ours_still_settling_is_not(
    lighter: LighterVenue,
    lighter_account: str,
    fake: FakeLighter,  # noqa: F811 - the imported fixture
    trader: Any,
) -> None:
    fake.accounts[int(lighter_account)].positions[ETH] = (Decimal("0.5"), Decimal("3000"))
    position = held(trader, "lighter", lighter_account, "ETHUSD", "long", "0.5", "3000")
    # An order of ours, changed a moment ago, resting at Lighter under its hashed client id.
    ours = Order.objects.create(
        user=trader,
        symbol="ETHUSD",
        category="crypto",
        side="long",
        type="market",
        status="pending",
        provider="lighter",
        position=position,
    )
    for client_order_id, trigger in ((str(ours.pk), "2800"), ("placed-by-hand", "2700")):
        lighter.place_stop(
            account_ref=lighter_account,
            venue_position_id=str(ETH),
            kind="stop_loss",
            trigger_price=Decimal(trigger),
            client_order_id=client_order_id,
        )
    wait_until(lambda: len(lighter.open_orders(account_ref=lighter_account)) == 2, what="two stops resting")
    by_hand = next(
        order
        for order in lighter.open_orders(account_ref=lighter_account)
        if order.client_order_id == lighter.venue_client_order_id("placed-by-hand")
    )

    reconciliation_run(order_grace=timedelta(minutes=1))

    [drift] = drifts()
    assert (drift.kind, drift.venue_ref, drift.our_ref) == (
        "order_extra_at_venue",
        by_hand.venue_order_id,
        "",
    )
    assert drift.details["client_order_id"] == lighter.venue_client_order_id("placed-by-hand")


def test_a_lighter_order_the_venue_never_received_is_missing_there(
    lighter_account: str,
    trader: Any,
) -> None:
    order = Order.objects.create(
        user=trader,
        symbol="ETHUSD",
        category="crypto",
        side="long",
        type="market",
        status="unknown",
        provider="lighter",
        collateral=Decimal(0),
    )

    run()
    run()

    [drift] = drifts()
    assert (drift.kind, drift.our_ref, drift.occurrences, drift.account_ref) == (
        "order_missing_at_venue",
        str(order.pk),
        2,
        lighter_account,
    )
    order.refresh_from_db()
    assert order.status == "unknown"  # only a fill is repaired


# --- Ostium -----------------------------------------------------------------------------


@pytest.fixture
def on_chain(ostium: Ostium) -> Iterator[Ostium]:  # noqa: F811
    with _serving("ostium", ostium.venue):
        registry.reset_cache()
        yield ostium
    _SERVED.clear()
    registry.reset_cache()


def _trade_opened_on_chain(world: Ostium) -> tuple[WalletInfo, VenuePosition]:
    """A trader's wallet that approved USDC and opened one EURUSD long; the trade, as Ostium
    lists it."""
    wallet = _trader(world)
    world.send(wallet, world.venue.build_usdc_approval(amount=Decimal(1_000)))
    assert _open(world, wallet)["status"] == 1
    (trade,) = world.venue.positions(account_ref=wallet.address)
    return wallet, trade


def test_an_ostium_trade_opened_on_chain_that_we_do_not_hold_is_extra(on_chain: Ostium, trader: Any) -> None:
    wallet, ours = _trade_opened_on_chain(on_chain)
    held(trader, "ostium", wallet.address, "EURUSD", "long", str(ours.size), str(PRICE))
    short = on_chain.venue.build_open_trade(
        trader=wallet.address,
        pair_index=EURUSD,
        side=Side.SHORT,
        collateral=Decimal(50),
        leverage=Decimal(10),
        price=PRICE,
    )
    assert on_chain.send(wallet, short)["status"] == 1

    first = run()
    second = run()

    found = drifts()
    assert len(found) == 1, [(d.venue, d.kind, d.symbol, d.details) for d in found]
    [drift] = found
    assert (drift.kind, drift.symbol, drift.account_ref, drift.occurrences) == (
        "extra_at_venue",
        "EURUSD",
        wallet.address,
        2,
    )
    assert drift.details["side"] == "short" and drift.venue_ref
    assert (first["drifts_opened"], second["drifts_opened"]) == (1, 0)
    assert alerts() == [("extra_at_venue", f"drift:{drift.pk}")]


def test_our_ostium_position_whose_trade_was_closed_on_chain_is_missing(
    on_chain: Ostium, trader: Any
) -> None:
    wallet, trade = _trade_opened_on_chain(on_chain)
    position = held(trader, "ostium", wallet.address, "EURUSD", "long", str(trade.size), str(PRICE))
    assert run()["drifts_found"] == 0
    on_chain.send(
        wallet,
        on_chain.venue.build_close_trade(
            trader=wallet.address, pair_index=EURUSD, index=int(trade.extra["index"]), market_price=PRICE
        ),
    )

    first = run()
    second = run()

    [drift] = drifts()
    assert (drift.kind, drift.symbol, drift.our_ref, drift.user_id, drift.occurrences) == (
        "missing_at_venue",
        "EURUSD",
        str(position.pk),
        trader.pk,
        2,
    )
    assert (first["drifts_opened"], second["drifts_found"]) == (1, 1)
    assert alerts() == [("missing_at_venue", f"drift:{drift.pk}")]


def test_an_ostium_market_order_waiting_for_the_keeper_that_is_not_ours_is_extra(
    on_chain: Ostium, trader: Any
) -> None:
    wallet, trade = _trade_opened_on_chain(on_chain)
    held(trader, "ostium", wallet.address, "EURUSD", "long", str(trade.size), str(PRICE))
    trading = on_chain.chain.contract("TestOstiumTrading", on_chain.trading)
    trading.functions.setAutoExecute(False).transact({"from": on_chain.chain.deployer})
    short = on_chain.venue.build_open_trade(
        trader=wallet.address,
        pair_index=EURUSD,
        side=Side.SHORT,
        collateral=Decimal(50),
        leverage=Decimal(10),
        price=PRICE,
    )
    try:
        assert on_chain.send(wallet, short)["status"] == 1
        [waiting] = on_chain.venue.open_orders(account_ref=wallet.address)

        run()
    finally:
        trading.functions.setAutoExecute(True).transact({"from": on_chain.chain.deployer})

    [drift] = drifts()
    assert (drift.kind, drift.venue_ref, drift.account_ref, drift.our_ref) == (
        "order_extra_at_venue",
        waiting.venue_order_id,
        wallet.address,
        "",
    )
    assert drift.details["venue_status"] == "pending"


def test_an_ostium_entry_price_beyond_the_tolerance_is_a_price_mismatch(
    on_chain: Ostium, trader: Any
) -> None:
    wallet, trade = _trade_opened_on_chain(on_chain)
    position = held(trader, "ostium", wallet.address, "EURUSD", "long", str(trade.size), "1.2")

    run()

    [drift] = drifts()
    assert (drift.kind, drift.our_ref, Decimal(drift.details["venue_entry_price"])) == (
        "price_mismatch",
        str(position.pk),
        PRICE,
    )
