"""Reconciliation against the paper venue: drift injected into its book (``PaperPosition``,
``PaperOrder``) or into ours is found once and counted after, the venue's fill of an order we
wait for is recorded exactly once, the rest raise an operator alert; the ledger stays balanced."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger.checks import ledger_check
from ledger.services import balance_adjust
from marqetfi.core.models import OperatorAlert
from pricing.services.pairs import pairs_sync
from providers import registry
from providers.base import OrderType, Side, VenueOrderRequest, VenuePosition
from providers.errors import ProviderError
from providers.models import PaperOrder, PaperPosition, RoutingRule
from providers.services.routing import routing_rule_update
from providers.venues.paper.adapter import PaperVenue
from tests.accounts.factories import UserFactory
from tests.trading.venues import FAULTS, faults
from trading import tasks
from trading.models import Fill, Position, ReconciliationDrift, VenueReconciliation
from trading.services.orders import OrderTerms, order_place
from trading.services.reconciliation import reconciliation_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _ledger_exact_after() -> Iterator[None]:
    """Reconciliation and its repairs keep the ledger exact: checked after every test."""
    yield
    assert ledger_check() == []


BTC = OrderTerms(symbol="BTCUSD", side="long", type="market", collateral=Decimal(1000), leverage=Decimal(10))
NOW = timedelta(0)


class DownVenue(PaperVenue):
    """A venue that cannot be reached."""

    name: ClassVar[str] = "down"
    settles_in_caller_transaction: ClassVar[bool] = False

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        raise ProviderError(self.name, "connect failed: ConnectError: refused", retryable=True)


@pytest.fixture(autouse=True)
def _ledger_balanced_after_each_test() -> Iterator[None]:
    yield
    assert ledger_check() == []


@pytest.fixture
def venues(paper_market: None) -> Iterator[None]:
    """The paper venue, ``flaky`` (the same paper book, failing on demand) and ``down``."""
    catalogue = copy.deepcopy(settings.PROVIDERS)
    catalogue["flaky"] = {**catalogue["paper"], "class": "tests.trading.venues.FlakyPaperVenue"}
    catalogue["down"] = {**catalogue["paper"], "class": "tests.trading.test_reconciliation.DownVenue"}
    with override_settings(PROVIDERS=catalogue):
        registry.reset_cache()
        pairs_sync(provider="flaky")
        FAULTS.update(place="ok", quotes="ok")
        yield
        FAULTS.update(place="ok", quotes="ok")
    registry.reset_cache()


@pytest.fixture
def btc_long(trader: Any, drive: Any) -> Position:
    """An open BTC long of the trader at the paper venue, the same in both books."""
    drive(BTCUSD="64000")
    order, _ = order_place(user=trader, order=BTC)
    assert order.status == "filled"
    return Position.objects.get(user=trader, status="open")


def run(**kwargs: Any) -> dict[str, Any]:
    return reconciliation_run(order_grace=NOW, **kwargs).as_dict()


def drifts(**filters: Any) -> list[ReconciliationDrift]:
    return list(ReconciliationDrift.objects.filter(**filters).order_by("kind"))


def paper_book(trader: Any) -> PaperPosition:
    return PaperPosition.objects.get(account_ref=str(trader.pk), status="open")


def test_books_that_agree_have_no_drift(btc_long):
    summary = run()

    assert summary["drifts_found"] == 0
    assert summary["venues"][0] | {"ok": True} == {
        "venue": "paper",
        "ok": True,
        "error": "",
        "accounts": 1,
        "found": 0,
        "opened": 0,
        "repaired": 0,
        "resolved": 0,
    }
    assert drifts() == []
    state = VenueReconciliation.objects.get(venue="paper")
    assert (state.runs, state.accounts_checked, state.last_error) == (1, 1, "")
    assert state.last_ok_at is not None


def test_a_position_the_venue_no_longer_has_is_missing_once_then_counted(btc_long, trader):
    PaperPosition.objects.filter(pk=paper_book(trader).pk).update(status="closed")

    first = run()
    second = run()

    [drift] = drifts()
    assert (drift.kind, drift.status, drift.symbol, drift.our_ref) == (
        "missing_at_venue",
        "open",
        "BTCUSD",
        str(btc_long.pk),
    )
    assert drift.user_id == trader.pk and drift.account_ref == str(trader.pk)
    assert drift.occurrences == 2
    assert (first["drifts_opened"], second["drifts_opened"], second["drifts_found"]) == (1, 0, 1)
    [alert] = OperatorAlert.objects.filter(source="reconciliation")
    assert (alert.code, alert.reference, alert.occurrences) == ("missing_at_venue", f"drift:{drift.pk}", 1)


def test_a_position_only_the_venue_has_is_extra(btc_long, trader, drive):
    drive(ETHUSD="3000")
    registry.venue("paper").place_order(
        order=VenueOrderRequest(
            account_ref=str(trader.pk),
            client_order_id="made-at-the-venue",
            symbol="ETHUSD",
            side=Side.SHORT,
            type=OrderType.MARKET,
            collateral=Decimal(100),
            leverage=Decimal(5),
        )
    )

    run()
    run()

    [drift] = drifts()
    assert (drift.kind, drift.symbol, drift.our_ref, drift.occurrences) == ("extra_at_venue", "ETHUSD", "", 2)
    assert drift.venue_ref == str(PaperPosition.objects.get(symbol="ETHUSD").pk)
    assert drift.details["side"] == "short" and drift.details["venue_size"] == "0.166"
    assert OperatorAlert.objects.filter(source="reconciliation", code="extra_at_venue").count() == 1


def test_a_size_that_differs_is_a_size_mismatch(btc_long, trader):
    PaperPosition.objects.filter(pk=paper_book(trader).pk).update(size=Decimal("0.2"))

    run()

    [drift] = drifts()
    assert drift.kind == "size_mismatch"
    assert (drift.details["our_size"], drift.details["venue_size"]) == (str(btc_long.size), "0.2")
    assert OperatorAlert.objects.filter(code="size_mismatch").exists()


def test_an_entry_price_beyond_the_tolerance_is_a_price_mismatch_and_within_it_is_not(btc_long, trader):
    book = paper_book(trader)
    PaperPosition.objects.filter(pk=book.pk).update(entry_price=book.entry_price * Decimal("1.0005"))
    run()
    assert drifts() == []  # 5 bps: within the default 10

    PaperPosition.objects.filter(pk=book.pk).update(entry_price=book.entry_price * Decimal("1.01"))
    run()

    [drift] = drifts()
    assert (drift.kind, drift.details["apart_bps"]) == ("price_mismatch", "99.01")
    assert OperatorAlert.objects.filter(code="price_mismatch").exists()


def test_a_resting_order_only_the_venue_has_is_extra(btc_long, trader):
    stray = registry.venue("paper").place_order(
        order=VenueOrderRequest(
            account_ref=str(trader.pk),
            client_order_id="stray-limit",
            symbol="BTCUSD",
            side=Side.LONG,
            type=OrderType.LIMIT,
            collateral=Decimal(100),
            leverage=Decimal(2),
            price=Decimal(50000),
        )
    )

    run()
    run()

    [drift] = drifts()
    assert (drift.kind, drift.venue_ref, drift.occurrences) == (
        "order_extra_at_venue",
        stray.venue_order_id,
        2,
    )
    assert drift.details["client_order_id"] == "stray-limit"
    assert OperatorAlert.objects.filter(code="order_extra_at_venue").count() == 1


def test_an_order_the_venue_never_received_is_missing_at_the_venue(venues, trader, drive):
    routing_rule_update(rule_id=RoutingRule.objects.get(value="crypto").pk, venues=["flaky"])
    drive(BTCUSD="64000")
    faults(place="timeout_before")
    order, _ = order_place(user=trader, order=BTC)
    assert order.status == "unknown"

    run()
    run()

    [drift] = drifts()
    assert (drift.venue, drift.kind, drift.our_ref, drift.occurrences) == (
        "flaky",
        "order_missing_at_venue",
        str(order.pk),
        2,
    )
    assert drift.details["our_status"] == "unknown"
    assert OperatorAlert.objects.filter(code="order_missing_at_venue").count() == 1
    order.refresh_from_db()
    assert order.status == "unknown"  # only a fill is repaired here


def test_an_order_the_venue_filled_while_we_waited_is_filled_here_exactly_once(venues, trader, drive):
    routing_rule_update(rule_id=RoutingRule.objects.get(value="crypto").pk, venues=["flaky"])
    drive(BTCUSD="64000")
    faults(place="timeout_after_fill")
    order, _ = order_place(user=trader, order=BTC)
    assert order.status == "unknown"

    first = run()
    second = run()

    order.refresh_from_db()
    assert order.status == "filled" and order.filled_size == Decimal("0.1562")
    assert Fill.objects.filter(order=order).count() == 1
    [position] = Position.objects.filter(user=trader, status="open")
    assert (position.provider, position.size) == ("flaky", Decimal("0.1562"))
    [drift] = drifts()
    assert (drift.kind, drift.status, drift.our_ref) == ("order_filled_at_venue", "repaired", str(order.pk))
    assert drift.resolved_at is not None
    assert (first["drifts_repaired"], second["drifts_repaired"], second["drifts_found"]) == (1, 0, 0)
    assert not OperatorAlert.objects.filter(source="reconciliation").exists()


def test_an_order_changed_within_the_grace_period_is_left_alone(venues, trader, drive):
    routing_rule_update(rule_id=RoutingRule.objects.get(value="crypto").pk, venues=["flaky"])
    drive(BTCUSD="64000")
    faults(place="timeout_after_fill")
    order, _ = order_place(user=trader, order=BTC)

    reconciliation_run(order_grace=timedelta(minutes=5))

    order.refresh_from_db()
    assert order.status == "unknown"
    assert drifts() == []


def test_a_drift_no_longer_found_is_resolved_by_the_next_run(btc_long, trader):
    book = paper_book(trader)
    PaperPosition.objects.filter(pk=book.pk).update(size=Decimal("0.2"))
    run()
    PaperPosition.objects.filter(pk=book.pk).update(size=book.size)

    summary = run()

    [drift] = drifts()
    assert (drift.status, drift.resolution, drift.resolved_by) == (
        "resolved",
        "no longer found by reconciliation",
        None,
    )
    assert summary["drifts_resolved"] == 1


def test_a_venue_that_fails_is_skipped_and_its_drifts_stay_open(venues, trader):
    drift = ReconciliationDrift.objects.create(
        venue="down",
        account_ref=str(trader.pk),
        kind="extra_at_venue",
        symbol="BTCUSD",
        detected_at=timezone.now(),
        last_seen_at=timezone.now(),
    )

    summary = run()

    [down] = [venue for venue in summary["venues"] if venue["venue"] == "down"]
    assert down["ok"] is False and "refused" in down["error"]
    drift.refresh_from_db()
    assert (drift.status, drift.occurrences) == ("open", 1)
    state = VenueReconciliation.objects.get(venue="down")
    assert state.last_ok_at is None and "refused" in state.last_error


def test_the_beat_task_runs_reconciliation(btc_long, trader):
    PaperPosition.objects.filter(pk=paper_book(trader).pk).update(status="closed")

    with override_settings(RECONCILIATION_ORDER_GRACE_SECONDS=0):
        summary = tasks.reconciliation_run.apply().get()

    assert summary["drifts_opened"] == 1
    assert [d.kind for d in drifts()] == ["missing_at_venue"]
    assert "reconciliation-run" in settings.CELERY_BEAT_SCHEDULE


def test_resting_orders_are_compared_only_once_sent(btc_long, trader):
    """A limit order resting in our own book was never sent: the venue need not have it."""
    order_place(
        user=trader,
        order=OrderTerms(
            symbol="BTCUSD",
            side="long",
            type="limit",
            collateral=Decimal(100),
            leverage=Decimal(2),
            price=Decimal(50000),
        ),
    )
    assert PaperOrder.objects.filter(status="open").count() == 0

    assert run()["drifts_found"] == 0


def test_a_position_drift_stays_open_while_its_market_has_an_order_in_flight(btc_long, trader):
    PaperPosition.objects.filter(pk=paper_book(trader).pk).update(size=Decimal("0.2"))
    run()

    summary = reconciliation_run(order_grace=timedelta(minutes=5))  # btc_long's order is recent

    assert summary.as_dict()["drifts_resolved"] == 0
    [drift] = drifts()
    assert (drift.kind, drift.status, drift.occurrences) == ("size_mismatch", "open", 1)


def test_accounts_that_agree_cost_a_few_queries_each(drive: Any, staff: Any) -> None:
    """What a venue's pass reads once (users with orders sent, accounts with open drifts) spares
    each account in order the queries that would find nothing: its cost no longer includes
    them, and another account adds only its own reads (the venue's two, ours three and the
    native stops' one)."""

    def fund(user: Any) -> None:
        balance_adjust(user=user, amount=Decimal("10000"), reason="test funding", actor=staff)

    drive(BTCUSD="64000")
    traders: list[Any] = [UserFactory() for _ in range(3)]
    for trader in traders:
        fund(trader)
        order_place(user=trader, order=BTC)
    with CaptureQueriesContext(connection) as three:
        assert run()["drifts_found"] == 0
    fourth: Any = UserFactory()
    fund(fourth)
    order_place(user=fourth, order=BTC)
    with CaptureQueriesContext(connection) as four:
        assert run()["drifts_found"] == 0

    per_account = len(four.captured_queries) - len(three.captured_queries)
    assert per_account <= 6, "\n".join(query["sql"] for query in four.captured_queries)
    assert not any(
        "UPDATE" in query["sql"] and "reconciliationdrift" in query["sql"] for query in four.captured_queries
    ), "no drift open: nothing to resolve"
