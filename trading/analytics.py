"""Trading figures over a window of time: a trader's own (``GET /analytics``) and the platform's
(the admin analytics).

Every figure is an aggregate the database computes; Python only merges a handful of grouped
rows (one per symbol, status, category or venue) and rounds. A window is half-open,
``start <= t < end``; ``start`` None means since the beginning. Fills count by when they were
executed, positions by when they were closed (or liquidated, or margin-called).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from django.db import models
from django.db.models import Count, F, Q, QuerySet, Sum

from accounts.models import User
from ledger.models import LedgerAccount, LedgerEntry
from trading import terms
from trading.models import Fill, Order, Position
from trading.selectors import positions_for_user, positions_marked

PERIODS: Final[dict[str, timedelta | None]] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "all": None,
}
DEFAULT_PERIOD: Final = "30d"

RATE_STEP: Final = Decimal("0.0001")
_ZERO: Final = Decimal(0)
_FINISHED = (Position.Status.CLOSED, Position.Status.LIQUIDATED)
# Wide enough for any sum of size x price; the result is rounded to USDC afterwards.
_AMOUNT: models.DecimalField = models.DecimalField(max_digits=65, decimal_places=18)
_NOTIONAL = Sum(F("size") * F("price"), output_field=_AMOUNT)
_ENTRY_NOTIONAL = Sum(F("size") * F("entry_price"), output_field=_AMOUNT)


def period_bounds(period: str, *, now: datetime) -> tuple[datetime | None, datetime]:
    """The window a named period (``PERIODS``) stands for, ending ``now``."""
    length = PERIODS[period]
    return (None if length is None else now - length), now


@dataclass(frozen=True)
class TradeOutcome:
    """A closed (or liquidated) position and what it made or lost."""

    position_id: Any
    symbol: str
    side: str
    realized_pnl: Decimal
    closed_at: datetime | None


@dataclass(frozen=True)
class SymbolFigures:
    symbol: str
    realized_pnl: Decimal
    volume: Decimal
    trades: int
    closed_positions: int
    win_rate: Decimal | None


@dataclass(frozen=True)
class UserAnalytics:
    start: datetime | None
    end: datetime
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    volume: Decimal
    trades: int
    closed_positions: int
    win_rate: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    best_trade: TradeOutcome | None
    worst_trade: TradeOutcome | None
    per_symbol: list[SymbolFigures]


@dataclass(frozen=True)
class PlatformFigures:
    """What happened on the platform in a window."""

    start: datetime | None
    end: datetime
    volume: Decimal
    fees: Decimal
    fees_posted: Decimal
    realized_pnl: Decimal
    trades: int
    orders_by_status: dict[str, int]
    traders_active: int
    liquidations: int
    margin_calls: int


@dataclass(frozen=True)
class PlatformExposure:
    """The platform's position now: what is open and what the fees account holds."""

    open_positions: int
    open_interest: Decimal
    open_interest_by_category: dict[str, Decimal]
    open_interest_by_venue: dict[str, Decimal]
    fees_account_balance: Decimal


def _within(rows: QuerySet[Any], field: str, start: datetime | None, end: datetime) -> QuerySet[Any]:
    rows = rows.filter(**{f"{field}__lt": end})
    return rows if start is None else rows.filter(**{f"{field}__gte": start})


def _usdc(value: Decimal | None) -> Decimal:
    return terms.usdc(value) if value is not None else terms.usdc(_ZERO)


def _rate(part: int, whole: int) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(RATE_STEP, ROUND_HALF_EVEN)


def _outcome(position: Position | None) -> TradeOutcome | None:
    if position is None:
        return None
    return TradeOutcome(
        position_id=position.pk,
        symbol=position.symbol,
        side=position.side,
        realized_pnl=position.realized_pnl,
        closed_at=position.closed_at,
    )


def _per_symbol(fills: QuerySet[Fill], closed: QuerySet[Position]) -> list[SymbolFigures]:
    traded = {
        row["symbol"]: row
        for row in fills.values("symbol")
        .annotate(realized=Sum("realized_pnl"), volume=_NOTIONAL, trades=Count("pk"))
        .order_by("symbol")
    }
    outcomes = {
        row["symbol"]: row
        for row in closed.values("symbol")
        .annotate(count=Count("pk"), wins=Count("pk", filter=Q(realized_pnl__gt=0)))
        .order_by("symbol")
    }
    figures = []
    for symbol in sorted(traded.keys() | outcomes.keys()):
        fill_row = traded.get(symbol, {})
        outcome_row = outcomes.get(symbol, {"count": 0, "wins": 0})
        figures.append(
            SymbolFigures(
                symbol=symbol,
                realized_pnl=_usdc(fill_row.get("realized")),
                volume=_usdc(fill_row.get("volume")),
                trades=fill_row.get("trades", 0),
                closed_positions=outcome_row["count"],
                win_rate=_rate(outcome_row["wins"], outcome_row["count"]),
            )
        )
    return figures


def analytics_for_user(*, user: User, start: datetime | None, end: datetime) -> UserAnalytics:
    """A trader's results in ``[start, end)``, with the unrealized P&L of what is open now.

    ``realized_pnl``, ``fees``, ``volume`` and ``trades`` come from the fills executed in the
    window (partial closes included); the win rate, averages and best / worst trade from the
    positions closed or liquidated in it, each with its whole realized P&L (before fees).
    """
    fills = _within(Fill.objects.filter(user=user), "created_at", start, end)
    totals = fills.aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fee"), volume=_NOTIONAL, trades=Count("pk")
    )
    closed = _within(Position.objects.filter(user=user, status__in=_FINISHED), "closed_at", start, end)
    outcomes = closed.aggregate(
        count=Count("pk"),
        wins=Count("pk", filter=Q(realized_pnl__gt=0)),
        losses=Count("pk", filter=Q(realized_pnl__lt=0)),
        won=Sum("realized_pnl", filter=Q(realized_pnl__gt=0)),
        lost=Sum("realized_pnl", filter=Q(realized_pnl__lt=0)),
    )
    marked = positions_marked(list(positions_for_user(user=user)))
    unrealized = sum((m.unrealized_pnl for m in marked if m.unrealized_pnl is not None), _ZERO)
    wins, losses = outcomes["wins"], outcomes["losses"]
    return UserAnalytics(
        start=start,
        end=end,
        realized_pnl=_usdc(totals["realized"]),
        unrealized_pnl=_usdc(unrealized),
        fees=_usdc(totals["fees"]),
        volume=_usdc(totals["volume"]),
        trades=totals["trades"],
        closed_positions=outcomes["count"],
        win_rate=_rate(wins, outcomes["count"]),
        average_win=terms.usdc(outcomes["won"] / wins) if wins else None,
        average_loss=terms.usdc(outcomes["lost"] / losses) if losses else None,
        best_trade=_outcome(closed.order_by("-realized_pnl", "closed_at").first()),
        worst_trade=_outcome(closed.order_by("realized_pnl", "closed_at").first()),
        per_symbol=_per_symbol(fills, closed),
    )


def platform_figures(*, start: datetime | None, end: datetime) -> PlatformFigures:
    """Volume, fees, users' realized P&L, orders, active traders and risk events in ``[start, end)``.

    ``fees`` is what the fills charged; ``fees_posted`` what reached the fees ledger account in
    the window (the two agree unless a posting failed). ``traders_active`` counts users who
    placed an order (opening, or closing by hand: closes fired by a trigger do not count).
    """
    fills = _within(Fill.objects.all(), "created_at", start, end)
    totals = fills.aggregate(
        volume=_NOTIONAL, fees=Sum("fee"), realized=Sum("realized_pnl"), trades=Count("pk")
    )
    posted = _within(
        LedgerEntry.objects.filter(account__user__isnull=True, account__kind=LedgerAccount.Kind.FEES),
        "transaction__created_at",
        start,
        end,
    ).aggregate(total=Sum("amount"))
    orders = _within(Order.objects.all(), "created_at", start, end)
    by_status = dict.fromkeys(Order.Status.values, 0)
    by_status.update(orders.values_list("status").annotate(n=Count("pk")).order_by())
    traders = (
        orders.filter(Q(purpose=Order.Purpose.OPEN) | Q(closed_by="trader"))
        .values("user_id")
        .distinct()
        .count()
    )
    return PlatformFigures(
        start=start,
        end=end,
        volume=_usdc(totals["volume"]),
        fees=_usdc(totals["fees"]),
        fees_posted=_usdc(posted["total"]),
        realized_pnl=_usdc(totals["realized"]),
        trades=totals["trades"],
        orders_by_status=by_status,
        traders_active=traders,
        liquidations=_within(
            Position.objects.filter(status=Position.Status.LIQUIDATED), "closed_at", start, end
        ).count(),
        margin_calls=_within(
            Position.objects.filter(margin_called_at__isnull=False), "margin_called_at", start, end
        ).count(),
    )


def platform_exposure() -> PlatformExposure:
    """Open positions now and their open interest (size x entry price, USDC) by category and
    venue, with the balance of the platform's fees account."""
    open_positions = Position.objects.filter(status__in=Position.LIVE)
    totals = open_positions.aggregate(count=Count("pk"), notional=_ENTRY_NOTIONAL)

    def grouped(field: str) -> dict[str, Decimal]:
        rows = open_positions.values_list(field).annotate(notional=_ENTRY_NOTIONAL).order_by(field)
        return {key: _usdc(notional) for key, notional in rows}

    fees_balance = (
        LedgerAccount.objects.filter(user__isnull=True, kind=LedgerAccount.Kind.FEES)
        .aggregate(total=Sum("balance"))
        .get("total")
    )
    return PlatformExposure(
        open_positions=totals["count"],
        open_interest=_usdc(totals["notional"]),
        open_interest_by_category=grouped("category"),
        open_interest_by_venue=grouped("provider"),
        fees_account_balance=_usdc(fees_balance),
    )
