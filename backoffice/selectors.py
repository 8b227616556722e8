"""The operators' dashboard figures over a period of whole days (UTC), read across apps.

Every figure is one aggregate query (GROUP BY day, venue, status or kind; conditional counts),
so the page costs the same eleven queries whatever the number of rows; Python only fills the
days without rows and merges a few grouped rows. Provider health comes from Redis, where the
providers' breaker records each call (no provider is called).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from django.db import models
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import User
from deposits.models import Deposit, DepositStatus
from ledger.models import LedgerAccount, LedgerEntry
from providers import registry
from providers.health import ProviderStats, provider_stats
from trading.models import Fill, Position, ReconciliationDrift
from webhooks.models import WebhookDelivery

PERIOD_DAYS: Final[dict[str, int]] = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
DEFAULT_PERIOD: Final = "30d"
LONGEST_RANGE_DAYS: Final = 366 * 2

_USDC_STEP: Final = Decimal("0.01")
_ZERO: Final = Decimal(0)
# Wide enough for any sum of size x price; rounded to cents afterwards.
_AMOUNT: models.DecimalField = models.DecimalField(max_digits=65, decimal_places=18)


def _cents(value: Decimal | None) -> Decimal:
    return (value or _ZERO).quantize(_USDC_STEP, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class DashboardPeriod:
    """Whole UTC days ``first .. last`` (inclusive); rows count when ``start <= t < end``."""

    first: date
    last: date
    name: str  # "7d" ... or "" for a custom range

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=timezone.get_current_timezone())

    @property
    def end(self) -> datetime:
        return datetime.combine(
            self.last + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone()
        )

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def dashboard_period(
    *, name: str | None = None, first: date | None = None, last: date | None = None, today: date
) -> DashboardPeriod:
    """The period asked for: ``first``/``last`` dates when both are given and sensible (at most
    two years), else a named period ending today, else the default (30 days)."""
    if first is not None and last is not None and first <= last and (last - first).days < LONGEST_RANGE_DAYS:
        return DashboardPeriod(first=first, last=last, name="")
    name = name if name in PERIOD_DAYS else DEFAULT_PERIOD
    return DashboardPeriod(first=today - timedelta(days=PERIOD_DAYS[name] - 1), last=today, name=name)


@dataclass(frozen=True)
class VenueFigures:
    venue: str
    volume: Decimal = _ZERO
    trades: int = 0
    traders: int = 0
    open_positions: int = 0
    open_interest: Decimal = _ZERO


@dataclass(frozen=True)
class ProviderHealth:
    name: str
    kind: str
    state: str
    calls: int
    failures: int
    error_rate: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    last_error: str | None
    error: str = ""  # Redis could not be read


@dataclass(frozen=True)
class DashboardFigures:
    period: DashboardPeriod
    signups_per_day: list[tuple[date, int]]
    signups: int
    active_traders_per_day: list[tuple[date, int]]
    active_traders: int
    volume_per_day: list[tuple[date, Decimal]]
    volume: Decimal
    venues: list[VenueFigures]
    open_interest: Decimal
    fees_per_day: list[tuple[date, Decimal]]
    fees: Decimal
    platform_pnl_per_day: list[tuple[date, Decimal]]
    platform_pnl: Decimal
    deposits_by_status: dict[str, tuple[int, Decimal]]
    webhook_deliveries_per_day: list[tuple[date, int, int]]  # day, succeeded, failed
    webhook_succeeded: int
    webhook_failed: int
    webhook_pending: int
    webhook_success_rate: Decimal | None  # succeeded / (succeeded + failed)
    providers: list[ProviderHealth]
    drifts_open: list[tuple[str, str, int]]  # venue, kind, open drifts (found at any time)
    drifts_found_per_day: list[tuple[date, int]]
    drifts_found: int


def _per_day(rows: dict[date, Any], period: DashboardPeriod, empty: Any) -> list[tuple[date, Any]]:
    return [(day, rows.get(day, empty)) for day in period.days]


def _signups(period: DashboardPeriod) -> dict[date, int]:
    rows = (
        User.objects.filter(date_joined__gte=period.start, date_joined__lt=period.end)
        .annotate(day=TruncDate("date_joined"))
        .values_list("day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(rows)


def _fills_per_day(period: DashboardPeriod) -> dict[date, tuple[int, Decimal]]:
    rows = (
        Fill.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(
            traders=Count("user_id", distinct=True),
            volume=Sum(F("size") * F("price"), output_field=_AMOUNT),
        )
        .order_by()
    )
    return {day: (traders, _cents(volume)) for day, traders, volume in rows}


def _venues(period: DashboardPeriod) -> list[VenueFigures]:
    fills = (
        Fill.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .values_list("provider")
        .annotate(
            volume=Sum(F("size") * F("price"), output_field=_AMOUNT),
            trades=Count("pk"),
            traders=Count("user_id", distinct=True),
        )
        .order_by()
    )
    held = (
        Position.objects.filter(status__in=Position.LIVE)
        .values_list("provider")
        .annotate(n=Count("pk"), notional=Sum(F("size") * F("entry_price"), output_field=_AMOUNT))
        .order_by()
    )
    figures: dict[str, dict[str, Any]] = defaultdict(dict)
    for venue, volume, trades, traders in fills:
        figures[venue].update(volume=_cents(volume), trades=trades, traders=traders)
    for venue, count, notional in held:
        figures[venue].update(open_positions=count, open_interest=_cents(notional))
    return [VenueFigures(venue=venue, **values) for venue, values in sorted(figures.items())]


def _platform_ledger(period: DashboardPeriod) -> dict[str, dict[date, Decimal]]:
    """What the platform's fees and realized-P&L accounts took in, per day: a fee credits the
    fees account, a trader's loss credits the P&L account and a trader's gain debits it."""
    # The accounts' ids first: with them as constants the planner sees how many entries each
    # platform account has (a quarter of all, each) and starts from the period's transactions.
    accounts = dict(
        LedgerAccount.objects.filter(
            user__isnull=True, kind__in=(LedgerAccount.Kind.FEES, LedgerAccount.Kind.REALIZED_PNL)
        ).values_list("pk", "kind")
    )
    rows = (
        LedgerEntry.objects.filter(
            account_id__in=list(accounts),
            transaction__created_at__gte=period.start,
            transaction__created_at__lt=period.end,
        )
        .annotate(day=TruncDate("transaction__created_at"))
        .values_list("account_id", "day")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    totals: dict[str, dict[date, Decimal]] = defaultdict(dict)
    for account, day, total in rows:
        totals[accounts[account]][day] = _cents(total)
    return totals


def _deposits(period: DashboardPeriod) -> dict[str, tuple[int, Decimal]]:
    rows = (
        Deposit.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .values_list("status")
        .annotate(n=Count("pk"), credited=Sum("credited_amount"))
        .order_by()
    )
    found = {status: (n, _cents(credited)) for status, n, credited in rows}
    return {status: found.get(status, (0, _ZERO)) for status in DepositStatus.values}


def _webhooks(period: DashboardPeriod) -> dict[date, tuple[int, int, int]]:
    status = WebhookDelivery.Status
    rows = (
        WebhookDelivery.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(
            succeeded=Count("pk", filter=Q(status=status.SUCCEEDED)),
            failed=Count("pk", filter=Q(status=status.FAILED)),
            pending=Count("pk", filter=Q(status=status.PENDING)),
        )
        .order_by()
    )
    return {day: (succeeded, failed, pending) for day, succeeded, failed, pending in rows}


def _drifts_open() -> list[tuple[str, str, int]]:
    rows = (
        ReconciliationDrift.objects.filter(status=ReconciliationDrift.Status.OPEN)
        .values_list("venue", "kind")
        .annotate(n=Count("pk"))
        .order_by("venue", "kind")
    )
    return list(rows)


def _drifts_found(period: DashboardPeriod) -> dict[date, int]:
    rows = (
        ReconciliationDrift.objects.filter(detected_at__gte=period.start, detected_at__lt=period.end)
        .annotate(day=TruncDate("detected_at"))
        .values_list("day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(rows)


def providers_health_now() -> list[ProviderHealth]:
    """Each configured provider's breaker state, error rate and latency over the breaker's
    sliding window (minutes), as the breaker recorded them in Redis."""
    report: list[ProviderHealth] = []
    for name in registry.provider_names():
        kind = registry.provider_kind(name)
        try:
            stats: ProviderStats = provider_stats(name)
        except RedisError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            report.append(ProviderHealth(name, kind, "unknown", 0, 0, 0.0, None, None, None, error=error))
            continue
        report.append(
            ProviderHealth(
                name=name,
                kind=kind,
                state=stats["state"],
                calls=stats["calls"],
                failures=stats["failures"],
                error_rate=stats["error_rate"],
                latency_ms_p50=stats["latency_ms_p50"],
                latency_ms_p95=stats["latency_ms_p95"],
                last_error=stats["last_error"],
            )
        )
    return report


def dashboard_figures(*, period: DashboardPeriod) -> DashboardFigures:
    """Every figure of the dashboard for ``period``: eleven queries (aggregates, and the two platform
    accounts' ids) and one Redis
    pipeline per provider, whatever the number of rows."""
    signups = _signups(period)
    fills = _fills_per_day(period)
    active_traders = (
        Fill.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .aggregate(n=Count("user_id", distinct=True))
        .get("n")
        or 0
    )
    venues = _venues(period)
    ledger = _platform_ledger(period)
    fees = ledger[LedgerAccount.Kind.FEES]
    pnl = ledger[LedgerAccount.Kind.REALIZED_PNL]
    webhooks = _webhooks(period)
    succeeded = sum(day[0] for day in webhooks.values())
    failed = sum(day[1] for day in webhooks.values())
    finished = succeeded + failed
    drifts_found = _drifts_found(period)
    return DashboardFigures(
        period=period,
        signups_per_day=_per_day(signups, period, 0),
        signups=sum(signups.values()),
        active_traders_per_day=_per_day({day: row[0] for day, row in fills.items()}, period, 0),
        active_traders=active_traders,
        volume_per_day=_per_day({day: row[1] for day, row in fills.items()}, period, _ZERO),
        volume=_cents(sum((row[1] for row in fills.values()), _ZERO)),
        venues=venues,
        open_interest=_cents(sum((venue.open_interest for venue in venues), _ZERO)),
        fees_per_day=_per_day(fees, period, _ZERO),
        fees=_cents(sum(fees.values(), _ZERO)),
        platform_pnl_per_day=_per_day(pnl, period, _ZERO),
        platform_pnl=_cents(sum(pnl.values(), _ZERO)),
        deposits_by_status=_deposits(period),
        webhook_deliveries_per_day=[
            (day, webhooks.get(day, (0, 0, 0))[0], webhooks.get(day, (0, 0, 0))[1]) for day in period.days
        ],
        webhook_succeeded=succeeded,
        webhook_failed=failed,
        webhook_pending=sum(day[2] for day in webhooks.values()),
        webhook_success_rate=(
            (Decimal(succeeded) / finished).quantize(Decimal("0.0001")) if finished else None
        ),
        providers=providers_health_now(),
        drifts_open=_drifts_open(),
        drifts_found_per_day=_per_day(drifts_found, period, 0),
        drifts_found=sum(drifts_found.values()),
    )
