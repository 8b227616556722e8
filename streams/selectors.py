"""What a socket reads: snapshots of its channels and the outbox after a sequence number.

Each function makes database (and price cache) reads: the consumer runs them through
``streams.db.stream_db`` (on the socket database threads).
"""

from __future__ import annotations

import logging
from typing import Any

from accounts.models import User
from deposits.presenters import deposits_data
from deposits.selectors import deposits_pending_for_user
from marqetfi.core.errors import ApplicationError
from marqetfi.core.events import event_payload
from marqetfi.core.models import Event, EventStream
from pricing.selectors import pairs_by_symbol
from pricing.services.prices import price_body, price_get
from trading.models import Order
from trading.presenters import order_data, position_data
from trading.selectors import orders_for_user, positions_for_user, positions_marked

logger = logging.getLogger(__name__)

OPEN_ORDER_STATUSES = (
    Order.Status.PENDING,
    Order.Status.OPEN,
    Order.Status.PARTIALLY_FILLED,
    Order.Status.UNKNOWN,
)


def symbols_active(symbols: list[str]) -> set[str]:
    """The symbols among ``symbols`` that name an active pair."""
    well_formed = [s for s in symbols if 0 < len(s) <= 32 and s.isascii() and s.isalnum()]
    return set(pairs_by_symbol(well_formed)) if well_formed else set()


def price_snapshot(symbol: str) -> dict[str, Any] | None:
    """The current price of ``symbol`` (``GET /prices/{symbol}``'s body) or None when unavailable."""
    try:
        return price_body(price_get(symbol))
    except ApplicationError as exc:
        logger.info("no price snapshot for %s: %s", symbol, exc.code)
        return None


def stream_last_seq(*, user: User) -> int:
    """The user's last event number: a snapshot read after it is at least that new."""
    return EventStream.objects.filter(user=user).values_list("last_seq", flat=True).first() or 0


def orders_open_snapshot(*, user: User) -> list[dict[str, Any]]:
    orders = orders_for_user(user=user).filter(status__in=OPEN_ORDER_STATUSES).order_by("created_at")
    return [order_data(order) for order in orders]


def positions_open_snapshot(*, user: User) -> list[dict[str, Any]]:
    marked = positions_marked(list(positions_for_user(user=user).order_by("created_at")))
    return [
        position_data(m.position, mark_price=m.mark_price, unrealized_pnl=m.unrealized_pnl) for m in marked
    ]


def deposits_pending_snapshot(*, user: User) -> list[dict[str, Any]]:
    """The user's deposits still under way, oldest first, each as ``deposit_update`` carries it."""
    return deposits_data(deposits_pending_for_user(user=user))


def events_after(*, user_id: Any, after_seq: int, limit: int) -> list[dict[str, Any]]:
    """The user's events numbered above ``after_seq``, oldest first, in their wire form."""
    events = Event.objects.filter(user_id=user_id, seq__gt=after_seq).order_by("seq")[:limit]
    return [event_payload(event) for event in events]
