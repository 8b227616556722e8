"""A counting venue: a real ``Venue`` whose quotes and listings a test sets in its book, and
which records every call made to it (what the acceptance tests count)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from providers.base import (
    Market,
    MarketCategory,
    Quote,
    Venue,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)


@dataclass
class VenueBook:
    """What a counting venue quotes and lists, how it misbehaves, and the calls it received."""

    quotes: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    markets: list[Market] = field(default_factory=list)
    quote_age: timedelta = timedelta(0)
    market_open: bool = True
    failure: Exception | None = None
    delay_seconds: float = 0.0
    price_calls: list[list[str]] = field(default_factory=list)
    market_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def quote(self, symbol: str, bid: str, ask: str) -> None:
        self.quotes[symbol] = (Decimal(bid), Decimal(ask))

    def symbols_asked(self) -> list[str]:
        return [symbol for call in self.price_calls for symbol in call]


BOOKS: dict[str, VenueBook] = {}


def market(symbol: str, category: MarketCategory = MarketCategory.CRYPTO, **limits: str) -> Market:
    values = {
        "tick_size": "0.1",
        "size_step": "0.0001",
        "min_collateral": "10",
        "max_leverage": "20",
    } | limits
    return Market(
        symbol=symbol,
        venue_symbol=limits.get("venue_symbol", f"{symbol}-PERP"),
        category=category,
        tick_size=Decimal(values["tick_size"]),
        size_step=Decimal(values["size_step"]),
        min_collateral=Decimal(values["min_collateral"]),
        max_leverage=Decimal(values["max_leverage"]),
    )


class CountingVenue(Venue):
    name = "counting"

    def __init__(self, *, book: str, **options: Any) -> None:
        self.book_name = book

    @property
    def book(self) -> VenueBook:
        return BOOKS[self.book_name]

    def health_check(self) -> None:
        if self.book.failure is not None:
            raise self.book.failure

    def markets(self) -> list[Market]:
        book = self.book
        with book.lock:
            book.market_calls += 1
        if book.failure is not None:
            raise book.failure
        return list(book.markets)

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        book = self.book
        with book.lock:
            book.price_calls.append(list(symbols))
        if book.delay_seconds:
            time.sleep(book.delay_seconds)
        if book.failure is not None:
            raise book.failure
        ts = timezone.now() - book.quote_age
        return {
            symbol: Quote(symbol=symbol, bid=bid, ask=ask, ts=ts, market_open=book.market_open)
            for symbol, (bid, ask) in book.quotes.items()
            if symbol in symbols
        }

    def account_ref(self, *, user_id: str, wallet_addresses: Iterable[str]) -> str:
        return ""

    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        return VenueOrder(
            venue_order_id="", client_order_id=order.client_order_id, status=VenueOrderStatus.REJECTED
        )

    def cancel_order(self, *, account_ref: str, venue_order_id: str) -> VenueOrder:
        return VenueOrder(
            venue_order_id=venue_order_id, client_order_id="", status=VenueOrderStatus.CANCELLED
        )

    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        return None

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        return []

    def open_orders(self, *, account_ref: str) -> list[VenueOrder]:
        return []

    def close_position(
        self, *, account_ref: str, venue_position_id: str, size: Any = None, client_order_id: str = ""
    ) -> VenueOrder:
        return VenueOrder(venue_order_id="", client_order_id="", status=VenueOrderStatus.REJECTED)
