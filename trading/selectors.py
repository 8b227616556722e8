"""Reads the API, events and analytics share: positions with live marks, the account summary."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from ledger.selectors import user_balances
from pricing.services.prices import Price, prices_get
from trading import terms
from trading.models import Order, Position, ProtectiveOrder

_ARMED_STOPS = Prefetch(
    "protective_orders", queryset=ProtectiveOrder.objects.filter(status=ProtectiveOrder.Status.ARMED)
)


@dataclass(frozen=True)
class MarkedPosition:
    position: Position
    mark_price: Decimal | None
    unrealized_pnl: Decimal | None


@dataclass(frozen=True)
class AccountSummary:
    available: Decimal
    margin_locked: Decimal
    unrealized_pnl: Decimal
    equity: Decimal
    open_positions: int


def positions_for_user(*, user: User, status: str | None = Position.Status.OPEN) -> QuerySet[Position]:
    """The user's positions with ``status`` (all when None); ``open`` includes those ``closing``
    (still held until the venue has executed their pending close)."""
    positions = Position.objects.filter(user=user).prefetch_related(_ARMED_STOPS)
    if status == Position.Status.OPEN:
        return positions.filter(status__in=Position.LIVE)
    return positions.filter(status=status) if status else positions


def orders_for_user(*, user: User, status: str | None = None, symbol: str | None = None) -> QuerySet[Order]:
    orders = Order.objects.filter(user=user).select_related("position")
    if status:
        orders = orders.filter(status=status)
    if symbol:
        orders = orders.filter(symbol=symbol.strip().upper())
    return orders


def _prices(symbols: set[str]) -> dict[str, Price]:
    if not symbols:
        return {}
    prices, _ = prices_get(sorted(symbols))
    return {price.symbol: price for price in prices}


def positions_marked(positions: list[Position]) -> list[MarkedPosition]:
    """Open positions with the price they would close at now (bid for longs, ask for shorts) and
    their unrealized P&L; a position whose price is unavailable has neither."""
    prices = _prices({p.symbol for p in positions if p.status in Position.LIVE})
    marked = []
    for position in positions:
        price = prices.get(position.symbol)
        if position.status not in Position.LIVE or price is None:
            marked.append(MarkedPosition(position, None, None))
            continue
        mark = terms.closing_price(side=position.side, bid=price.bid, ask=price.ask)
        pnl = terms.pnl(side=position.side, entry=position.entry_price, exit_price=mark, size=position.size)
        marked.append(MarkedPosition(position, mark, pnl))
    return marked


def account_summary(*, user: User) -> AccountSummary:
    """Balances from the ledger; equity = available + margin locked + unrealized P&L."""
    balances = user_balances(user=user)
    marked = positions_marked(list(positions_for_user(user=user)))
    unrealized = sum((m.unrealized_pnl or Decimal(0) for m in marked), Decimal(0))
    return AccountSummary(
        available=balances.available,
        margin_locked=balances.margin,
        unrealized_pnl=terms.usdc(unrealized),
        equity=terms.usdc(balances.available + balances.margin + unrealized),
        open_positions=len(marked),
    )
