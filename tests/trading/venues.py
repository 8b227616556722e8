"""A paper venue that misbehaves on demand: ``FAULTS["place"]`` decides what ``place_order`` does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from providers.base import Quote, VenueOrder, VenueOrderRequest
from providers.errors import ProviderError
from providers.venues.paper.adapter import PaperVenue

# "ok": a normal paper fill; "refuse": a connection error before anything was sent;
# "timeout_after_fill": the order executes, then the answer is lost (a read timeout);
# "timeout_before": the request times out and never reached the venue; "reject": a 400.
# ``FAULTS["quotes"]``: "ok", or "old": every quote is a minute old (a venue whose feed stalled).
FAULTS: dict[str, str] = {"place": "ok", "quotes": "ok"}


class FlakyPaperVenue(PaperVenue):
    name: ClassVar[str] = "flaky"
    # It stands in for a venue across the network: our order row commits before it is called.
    settles_in_caller_transaction: ClassVar[bool] = False

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        quotes = super().prices(symbols=symbols)
        if FAULTS["quotes"] == "old":
            return {
                symbol: Quote(symbol=q.symbol, bid=q.bid, ask=q.ask, ts=q.ts - timedelta(minutes=1))
                for symbol, q in quotes.items()
            }
        return quotes

    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        mode = FAULTS["place"]
        if mode == "refuse":
            raise ProviderError(self.name, "connect failed: ConnectError: refused", retryable=True)
        if mode == "timeout_before":
            raise ProviderError(self.name, "POST /orders timed out after 5 s", retryable=True)
        if mode == "reject":
            raise ProviderError(self.name, "order size too small", status_code=400)
        placed = super().place_order(order=order)
        if mode == "timeout_after_fill":
            raise ProviderError(self.name, "POST /orders timed out after 5 s", retryable=True)
        return placed


def faults(**modes: Any) -> None:
    FAULTS.update(modes)
