"""The operators' dashboard in the admin (``/admin/dashboard/``): what staff see for a period,
who may see it, how many queries it costs and that it loads nothing from elsewhere."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice.models import DailyFigure
from backoffice.selectors import DashboardFigures, dashboard_figures, dashboard_period
from backoffice.services import daily_figures_fill
from backoffice.tasks import daily_figures_roll_task
from deposits.models import Deposit, DepositStatus
from ledger.models import LedgerAccount, TransactionKind
from ledger.services import (
    balance_adjust,
    ledger_accounts_for_user,
    ledger_transaction_post,
    platform_account,
)
from tests.accounts.factories import UserFactory
from tests.deposits.factories import DepositFactory
from tests.webhooks.factories import WebhookDeliveryFactory, WebhookEndpointFactory
from trading.models import Fill, Position, ReconciliationDrift
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db

URL = "/admin/dashboard/"


@pytest.fixture
def staff() -> Any:
    return UserFactory(is_staff=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def days_ago(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


def figure(html: str, name: str) -> str:
    """The bold number of a headline figure (``<li id="figure-NAME">... <strong>N</strong>``)."""
    found = re.search(rf'id="figure-{name}">[^<]*<strong>([^<]*)</strong>', html)
    assert found, name
    return found.group(1)


def row(html: str, row_id: str) -> list[str]:
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert found, row_id
    return re.findall(r"<td[^>]*>([^<]*)</td>", found.group(1))


def trade(user: Any, *, venue: str, size: str, price: str, when: datetime, open_: bool = False) -> Fill:
    """A position at ``venue`` and its opening fill, as trading records them; ``open_`` keeps the
    position open (it counts in open interest), otherwise it is closed."""
    position = Position.objects.create(
        user=user,
        symbol="BTCUSD",
        category="crypto",
        side="long",
        provider=venue,
        status=Position.Status.OPEN if open_ else Position.Status.CLOSED,
        size=Decimal(size),
        entry_price=Decimal(price),
        collateral=Decimal(size) * Decimal(price) / 10,
        leverage=Decimal(10),
        liquidation_level=Decimal("0.1"),
        margin_call_level=Decimal("0.3"),
    )
    return Fill.objects.create(
        user=user,
        position=position,
        kind=Fill.Kind.OPEN,
        symbol="BTCUSD",
        side="long",
        provider=venue,
        size=Decimal(size),
        price=Decimal(price),
        created_at=when,
    )


def platform_takes(user: Any, *, fee: str, loss: str, staff: Any) -> None:
    """A fee and a trader's loss reaching the platform's fees and realized-P&L accounts."""
    balance_adjust(user=user, amount=Decimal(1000), reason="test funding", actor=staff)
    available = ledger_accounts_for_user(user=user).available
    ledger_transaction_post(
        kind=TransactionKind.FEE,
        legs=[(available, -Decimal(fee)), (platform_account(kind=LedgerAccount.Kind.FEES), Decimal(fee))],
    )
    ledger_transaction_post(
        kind=TransactionKind.POSITION_SETTLE,
        legs=[
            (available, -Decimal(loss)),
            (platform_account(kind=LedgerAccount.Kind.REALIZED_PNL), Decimal(loss)),
        ],
    )


def deliveries(
    owner: Any, *, succeeded: int, failed: int, pending: int = 0, when: datetime | None = None
) -> None:
    endpoint = WebhookEndpointFactory(user=owner)
    for status, count in (
        (WebhookDelivery.Status.SUCCEEDED, succeeded),
        (WebhookDelivery.Status.FAILED, failed),
        (WebhookDelivery.Status.PENDING, pending),
    ):
        for _ in range(count):
            delivery = WebhookDeliveryFactory(endpoint=endpoint, status=status)
            if when is not None:
                WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=when)


def drift(*, venue: str, kind: str, when: datetime, status: str = ReconciliationDrift.Status.OPEN) -> None:
    ReconciliationDrift.objects.create(
        venue=venue,
        kind=kind,
        status=status,
        our_ref=str(when.timestamp()),
        detected_at=when,
        last_seen_at=when,
    )


@pytest.fixture
def platform(staff: Any) -> dict[str, Any]:
    """Two sign-ups in the last week (plus staff) and one 60 days ago; fills on two venues this
    week and one 60 days ago; a deposit per status; 3 webhook successes, 1 failure, 1 pending;
    two open drifts and a resolved one; a fee of 2.50 and a trader's loss of 40."""
    alice = UserFactory(date_joined=days_ago(1))
    bob = UserFactory(date_joined=days_ago(3))
    old = UserFactory(date_joined=days_ago(60))
    trade(alice, venue="lighter", size="0.5", price="60000", when=days_ago(1))  # 30,000
    trade(bob, venue="lighter", size="0.1", price="61000", when=days_ago(2), open_=True)  # 6,100
    trade(alice, venue="ostium", size="2", price="3000", when=days_ago(2), open_=True)  # 6,000
    trade(old, venue="ostium", size="1", price="1000", when=days_ago(60))  # only in 90 days
    for status in DepositStatus.values:
        DepositFactory(user=alice, status=status)
    DepositFactory(user=bob, status=DepositStatus.COMPLETED, credited_amount=Decimal("24.9"))
    deliveries(alice, succeeded=3, failed=1, pending=1)
    deliveries(bob, succeeded=0, failed=5, when=days_ago(45))
    drift(venue="lighter", kind=ReconciliationDrift.Kind.SIZE_MISMATCH, when=days_ago(1))
    drift(venue="ostium", kind=ReconciliationDrift.Kind.MISSING_AT_VENUE, when=days_ago(50))
    drift(
        venue="ostium",
        kind=ReconciliationDrift.Kind.EXTRA_AT_VENUE,
        when=days_ago(2),
        status=ReconciliationDrift.Status.RESOLVED,
    )
    platform_takes(alice, fee="2.50", loss="40", staff=staff)
    return {"alice": alice, "bob": bob}


def test_staff_see_each_section_s_figures_for_the_default_30_days(staff_client, platform):
    response = staff_client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Dashboard" in html
    assert figure(html, "signups") == "3"  # alice, bob and the staff member
    assert figure(html, "active-traders") == "2"
    assert figure(html, "volume") == "42100.00"
    assert figure(html, "open-interest") == "12100.00"  # bob's 6,100 and alice's 6,000 still open
    assert figure(html, "fees") == "2.50"
    assert figure(html, "pnl") == "40.00"
    assert figure(html, "webhook-success") == "0.7500"  # 3 of the 4 finished; the pending one waits
    assert "3 succeeded, 1 failed, 1 pending" in html
    assert figure(html, "drifts") == "2"  # found in the period, the resolved one included
    # volume, fills, traders, open positions, open interest
    assert row(html, "venue-lighter")[1:] == ["36100.00", "2", "2", "1", "6100.00"]
    assert row(html, "venue-ostium")[1:] == ["6000.00", "1", "1", "1", "6000.00"]
    assert row(html, "deposits-completed")[1:] == ["2", "24.90"]
    for status in DepositStatus.values:
        assert row(html, f"deposits-{status}")[1] in {"1", "2"}
    open_drifts = re.search(r'<section id="drifts">(.*?)</section>', html, re.S)
    assert open_drifts
    assert re.findall(r"<td[^>]*>([^<]*)</td>", open_drifts.group(1)) == [
        "lighter",
        "size_mismatch",
        "1",
        "ostium",
        "missing_at_venue",
        "1",
    ]
    assert row(html, "provider-paper")[0] == "paper"  # its breaker's state and latency, from Redis


def test_the_period_selector_changes_the_figures(staff_client, platform):
    week = staff_client.get(URL, {"period": "7d"}).content.decode()
    quarter = staff_client.get(URL, {"period": "90d"}).content.decode()
    today = timezone.localdate()
    custom = staff_client.get(
        URL, {"from": str(today - timedelta(days=61)), "to": str(today - timedelta(days=59))}
    ).content.decode()

    assert figure(week, "signups") == "3"
    assert figure(quarter, "signups") == "4"
    assert figure(week, "volume") == "42100.00"
    assert figure(quarter, "volume") == "43100.00"
    assert figure(custom, "volume") == "1000.00"
    assert figure(custom, "signups") == "1"
    assert figure(custom, "fees") == "0.00"
    assert figure(quarter, "webhook-success") == "0.3333"  # 3 of 9 once the 5 failures count
    assert figure(custom, "webhook-success") == "&ndash;"
    assert "(UTC, 7 days)" in week
    assert "(UTC, 90 days)" in quarter
    assert "(UTC, 3 days)" in custom
    # open interest is now, whatever the period
    assert figure(custom, "open-interest") == "12100.00"
    # an unreadable period shows the default
    assert "(UTC, 30 days)" in staff_client.get(URL, {"period": "forever", "from": "x"}).content.decode()


def test_each_day_has_its_bar(staff_client, platform):
    html = staff_client.get(URL, {"period": "7d"}).content.decode()

    chart = re.search(r'<figure class="chart" id="chart-volume">(.*?)</figure>', html, re.S)
    assert chart
    bars = re.findall(r"<title>([\d-]+): ([^<]*)</title>", chart.group(1))
    assert len(bars) == 7
    by_day = dict(bars)
    assert by_day[str(days_ago(1).date())] == "30000.00"
    assert by_day[str(days_ago(2).date())] == "12100.00"


def test_non_staff_are_sent_to_the_login_page(platform):
    anonymous = Client().get(URL)
    trader = Client()
    trader.force_login(platform["alice"])
    signed_in = trader.get(URL)

    for response in (anonymous, signed_in):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=/admin/dashboard/")


def test_the_admin_index_links_to_the_dashboard(staff_client):
    html = staff_client.get("/admin/").content.decode()

    assert f'href="{URL}"' in html


def _rows(n: int, staff: Any) -> None:
    """``n`` of every kind of row the dashboard aggregates, spread over the last 20 days."""
    for index in range(n):
        when = days_ago(index % 20)
        user = UserFactory(date_joined=when)
        trade(user, venue=("lighter", "ostium", "paper")[index % 3], size="1", price="100", when=when)
        DepositFactory(user=user, status=DepositStatus.values[index % len(DepositStatus.values)])
        drift(venue="lighter", kind=ReconciliationDrift.Kind.SIZE_MISMATCH, when=when)
    deliveries(staff, succeeded=n, failed=n)
    platform_takes(UserFactory(), fee="1", loss="1", staff=staff)


def test_the_query_count_does_not_grow_with_the_rows(staff_client, staff):
    staff_client.get(URL)  # per-process caches (runtime settings) filled, closed days rolled up
    _rows(3, staff)
    # The rows are dated in the past, which the platform never does: the rollups of those
    # closed days are dropped, built again by the next page and read by the one after.
    DailyFigure.objects.all().delete()
    staff_client.get(URL)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(URL).status_code == 200
    _rows(9, staff)
    DailyFigure.objects.all().delete()
    staff_client.get(URL)
    with CaptureQueriesContext(connection) as many:
        response = staff_client.get(URL)

    assert figure(response.content.decode(), "volume") == "1200.00"
    assert len(many.captured_queries) == len(few.captured_queries)
    figures_queries = [q for q in many.captured_queries if "django_session" not in q["sql"]]
    assert len(figures_queries) <= 18, [q["sql"][:120] for q in figures_queries]


def _comparable(figures: DashboardFigures) -> dict[str, Any]:
    values = dataclasses.asdict(figures)
    del values["providers"]  # live from Redis, not part of the rollups
    return values


def test_the_figures_from_rollups_equal_those_from_the_raw_rows(staff, platform):
    _rows(6, staff)
    trade(platform["bob"], venue="paper", size="0.123456789", price="1.000000001", when=timezone.now())
    today = timezone.localdate()
    periods = [dashboard_period(name=name, today=today) for name in ("7d", "30d", "90d", "365d")]
    periods.append(
        dashboard_period(first=today - timedelta(days=61), last=today + timedelta(days=2), today=today)
    )
    raw = [_comparable(dashboard_figures(period=period, stored=False)) for period in periods]

    unstored = [_comparable(dashboard_figures(period=period)) for period in periods]  # nothing stored
    daily_figures_fill(first=today - timedelta(days=400), last=today - timedelta(days=1))
    stored = [_comparable(dashboard_figures(period=period)) for period in periods]

    assert unstored == raw
    assert stored == raw
    for period, figures in zip(periods, stored, strict=True):  # distinct traders, short and long periods
        fills = Fill.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        assert figures["active_traders"] == fills.values("user_id").distinct().count() > 0
        assert {venue["venue"]: venue["traders"] for venue in figures["venues"]} == {
            venue["venue"]: fills.filter(provider=venue["venue"]).values("user_id").distinct().count()
            for venue in figures["venues"]
        }
    assert raw[3]["volume"] > 0 and raw[3]["deposits_by_status"][DepositStatus.COMPLETED][1] == Decimal(
        "24.90"
    )


def test_a_closed_day_is_stored_once_and_read_afterwards(staff_client, staff, platform):
    today = timezone.localdate()
    with CaptureQueriesContext(connection) as first:
        staff_client.get(URL, {"period": "365d"})
    rows = DailyFigure.objects.count()
    computed = {row.pk: row.computed_at for row in DailyFigure.objects.all()}
    with CaptureQueriesContext(connection) as second:
        html = staff_client.get(URL, {"period": "365d"}).content.decode()
    _rows(9, staff)  # more rows in the past change nothing stored (nor the query count)
    with CaptureQueriesContext(connection) as third:
        staff_client.get(URL, {"period": "365d"})

    closed = DailyFigure.objects.filter(metric=DailyFigure.Metric.CLOSED)
    assert closed.count() == 364 and not closed.filter(day=today).exists()
    assert DailyFigure.objects.count() == rows
    assert {row.pk: row.computed_at for row in DailyFigure.objects.all()} == computed
    assert figure(html, "volume") == "43100.00"
    assert DailyFigure.objects.get(day=days_ago(60).date(), metric="venue", key="ostium").amount == 1000
    # PostgreSQL: INSERT INTO ... ON CONFLICT DO NOTHING; SQLite: INSERT OR IGNORE INTO ...
    assert [
        q
        for q in first.captured_queries
        if q["sql"].startswith("INSERT") and 'INTO "backoffice_dailyfigure"' in q["sql"]
    ]
    for later in (second, third):
        assert not [q for q in later.captured_queries if q["sql"].startswith(("INSERT", "UPDATE", "DELETE"))]
        assert len(later.captured_queries) < len(first.captured_queries)
    assert len(third.captured_queries) == len(second.captured_queries) <= 20


def test_the_nightly_task_rolls_up_yesterday_and_computes_the_last_two_days_again(staff, platform):
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)
    daily_figures_fill(first=today - timedelta(days=3), last=yesterday)
    # a deposit of the day before yesterday is credited after its day was rolled up
    late = DepositFactory(user=platform["bob"], status=DepositStatus.SWAPPING)
    Deposit.objects.filter(pk=late.pk).update(created_at=days_ago(2))
    DailyFigure.objects.filter(day=yesterday).delete()
    Deposit.objects.filter(pk=late.pk).update(status=DepositStatus.COMPLETED, credited_amount=Decimal("10"))

    assert settings.CELERY_BEAT_SCHEDULE["dashboard-daily-figures"]["task"] == daily_figures_roll_task.name
    daily_figures_roll_task.apply()

    assert DailyFigure.objects.filter(day=yesterday, metric=DailyFigure.Metric.CLOSED).exists()
    assert DailyFigure.objects.get(day=yesterday, metric="venue", key="lighter").amount == 30000
    completed = DailyFigure.objects.get(
        day=days_ago(2).date(), metric="deposits", key=DepositStatus.COMPLETED
    )
    assert completed.amount == 10
    assert not DailyFigure.objects.filter(day=today).exists()
    assert DailyFigure.objects.filter(metric=DailyFigure.Metric.CLOSED).count() == 366


def test_the_page_loads_only_local_files(staff_client, platform):
    html = staff_client.get(URL).content.decode()

    sources = re.findall(r'<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"]*)"', html)
    assert sources, "the admin's own stylesheets at least"
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    assert not re.search(r"""(?:src|href)=["']https?://""", html)
