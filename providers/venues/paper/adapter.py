"""The paper venue: a complete simulated venue behind the ``Venue`` interface (the default on a
fresh machine). Prices come from a deterministic random walk shared through Redis
(``walk.py``), or mirror another venue's mids while that venue answers; orders and positions
live in the database (``book.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import ClassVar

from django.utils import timezone
from redis.exceptions import RedisError

from providers import registry
from providers.base import Market, Quote, Venue, VenueOrder, VenueOrderRequest, VenuePosition
from providers.breaker import call_provider
from providers.errors import ProviderError
from providers.venues.paper import book
from providers.venues.paper.markets import PAPER_PAIRS, PaperPair, paper_pair
from providers.venues.paper.walk import PaperPriceWalk, round_to_step

logger = logging.getLogger(__name__)

MAX_VOLATILITY_BPS = Decimal(1000)
ANSWER_MODES = ("sync", "async")


def _bps_option(name: str, value: object, maximum: Decimal | None = None) -> Decimal:
    """An option given as a string (or number) of basis points, checked."""
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        parsed = Decimal("NaN")
    if not parsed.is_finite() or parsed < 0 or (maximum is not None and parsed > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise registry.ProviderNotConfigured("paper", f"{name} must be a number of basis points >= 0{bound}")
    return parsed


def _second(moment: datetime) -> int:
    return int(moment.timestamp())


class PaperVenue(Venue):
    """Options (strings, from the provider configuration): ``spread_bps`` between bid and ask,
    ``slippage_bps`` that market fills move against the trader, ``volatility_bps`` of the walk's
    step per second (for the crypto majors; calmer pairs scale it down), and ``mirror_venue``,
    a venue whose mids to follow while it answers.

    Answers (``answer_mode``): ``sync`` (the default) fills a market order or a close in the
    call that sends it. ``async`` answers ``pending`` instead: the venue's own book keeps the
    order and executes it at the market of that moment once ``answer_delay_seconds`` have
    passed, when it is next looked up (``get_order`` by client id, which is how we learn every
    outcome: the paper venue has no order stream). ``drop_answers`` (tests, drills): the venue
    takes every order and close, then the answer is lost (a 504 after the fact), so only a
    reconciliation by client id can tell what happened.

    ``now`` is the clock, injectable for tests; every process must use real time in production.
    """

    name: ClassVar[str] = "paper"
    # The book is rows of our database (``book.py``) and prices come from Redis.
    settles_in_caller_transaction: ClassVar[bool] = True

    def __init__(
        self,
        spread_bps: str,
        slippage_bps: str,
        volatility_bps: str,
        mirror_venue: str = "",
        *,
        answer_mode: str = "sync",
        answer_delay_seconds: str = "0",
        drop_answers: str = "",
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.spread_bps = _bps_option("spread_bps", spread_bps, maximum=Decimal(10_000))
        self.slippage_bps = _bps_option("slippage_bps", slippage_bps, maximum=Decimal(10_000))
        self.volatility_bps = _bps_option("volatility_bps", volatility_bps, maximum=MAX_VOLATILITY_BPS)
        self.mirror_venue = (mirror_venue or "").strip()
        if self.mirror_venue == self.name:
            raise registry.ProviderNotConfigured("paper", "mirror_venue cannot be the paper venue itself")
        self.answer_mode = (answer_mode or "sync").strip()
        if self.answer_mode not in ANSWER_MODES:
            raise registry.ProviderNotConfigured("paper", "answer_mode must be sync or async")
        try:
            delay = Decimal(str(answer_delay_seconds or "0").strip())
        except InvalidOperation:
            delay = Decimal("NaN")
        if not delay.is_finite() or delay < 0:
            raise registry.ProviderNotConfigured("paper", "answer_delay_seconds must be a number >= 0")
        self.answer_delay = timedelta(seconds=float(delay))
        self.drop_answers = str(drop_answers or "").strip().lower() in {"1", "true", "yes", "on"}
        self.now = now
        self.walk = PaperPriceWalk(volatility_bps=self.volatility_bps)

    def health_check(self) -> None:
        """The paper venue needs only Redis (its shared price state) and the database."""
        try:
            self.walk.mids([PAPER_PAIRS[0].symbol], _second(self.now()))
        except RedisError as exc:
            raise ProviderError("paper", f"price state unavailable: {exc}", retryable=True) from exc

    # --- Market data -------------------------------------------------------------------

    def markets(self) -> list[Market]:
        return [pair.market for pair in PAPER_PAIRS]

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        known = [symbol for symbol in dict.fromkeys(symbols) if paper_pair(symbol) is not None]
        if not known:
            return {}
        now = self.now()
        second = _second(now)
        mirrored = self._mirrored(known, second) if self.mirror_venue else {}
        mids = self.walk.mids([s for s in known if s not in mirrored], second)
        quotes = {symbol: self._quote(symbol, mid, now) for symbol, mid in mids.items()}
        for symbol, (mid, market_open) in mirrored.items():
            quotes[symbol] = self._quote(symbol, mid, now, market_open=market_open)
        return {symbol: quotes[symbol] for symbol in known}

    def paper_price_set(self, *, symbol: str, price: Decimal) -> Quote:
        """Re-anchor the walk of ``symbol`` at ``price`` (rounded to the tick) now; the walk
        continues from there. Returns the quote at that price.

        Raises ValueError for a symbol the venue does not list or a price that is not positive
        on its tick; callers validate first (see ``services.paper_price_drive``).
        """
        pair = paper_pair(symbol)
        if pair is None:
            raise ValueError(f"the paper venue does not list {symbol}")
        mid = round_to_step(price, pair.market.tick_size, ROUND_HALF_EVEN)
        if mid <= 0:
            raise ValueError("the price must be positive on the pair's tick")
        now = self.now()
        self.walk.set({symbol: mid}, _second(now))
        return self._quote(symbol, mid, now)

    def _quote(self, symbol: str, mid: Decimal, now: datetime, *, market_open: bool = True) -> Quote:
        """Bid and ask around ``mid``, ``spread_bps`` apart, each on the tick away from the mid."""
        pair = paper_pair(symbol)
        assert pair is not None
        tick = pair.market.tick_size
        half = mid * self.spread_bps / 20_000
        bid = max(round_to_step(mid - half, tick, ROUND_FLOOR), tick)
        ask = max(round_to_step(mid + half, tick, ROUND_CEILING), bid)
        return Quote(symbol=symbol, bid=bid, ask=ask, ts=now, market_open=market_open)

    def _mirrored(self, symbols: list[str], second: int) -> dict[str, tuple[Decimal, bool]]:
        """The mirror venue's mids (on our ticks) and open flags, for the symbols it quotes.

        Nothing when it is switched off, unconfigured, failing or its breaker is open: the walk
        serves instead, re-anchored at the last mirrored mids so that it continues from them.
        """
        try:
            venue = registry.adapter(self.mirror_venue)
            if not isinstance(venue, Venue):
                return {}
            quotes = call_provider(self.mirror_venue, venue.prices, symbols=symbols)
        except ProviderError as exc:
            logger.info("paper: mirror %s unavailable, walking instead: %s", self.mirror_venue, exc)
            return {}
        mirrored: dict[str, tuple[Decimal, bool]] = {}
        for symbol, quote in quotes.items():
            pair: PaperPair | None = paper_pair(symbol)
            if pair is None or symbol not in symbols:
                continue
            mid = round_to_step(quote.mid, pair.market.tick_size, ROUND_HALF_EVEN)
            if mid > 0:
                mirrored[symbol] = (mid, quote.market_open)
        self.walk.set({symbol: mid for symbol, (mid, _) in mirrored.items()}, second)
        return mirrored

    def _quote_of(self, symbol: str) -> Quote | None:
        return self.prices(symbols=[symbol]).get(symbol)

    # --- Orders and positions ----------------------------------------------------------

    def account_ref(self, *, user_id: str, wallet_addresses: Iterable[str]) -> str:
        """One paper book per user, named by the user's id."""
        return user_id

    def _executes_at(self) -> datetime | None:
        """When an order or close sent now executes: now (in the call) unless answers are async."""
        return self.now() + self.answer_delay if self.answer_mode == "async" else None

    def _answer(self, answer: VenueOrder, what: str) -> VenueOrder:
        """``answer``, unless answers are dropped: then the venue has acted and we never hear."""
        if self.drop_answers:
            raise ProviderError(self.name, f"{what}: the answer was lost (drop_answers)", status_code=504)
        return answer

    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        placed = book.paper_order_place(
            order=order,
            quote_of=self._quote_of,
            slippage_bps=self.slippage_bps,
            executes_at=self._executes_at(),
        )
        return self._answer(placed, "place_order")

    def cancel_order(self, *, account_ref: str, venue_order_id: str) -> VenueOrder:
        return book.paper_order_cancel(account_ref=account_ref, venue_order_id=venue_order_id)

    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        return book.paper_order_get(
            account_ref=account_ref,
            client_order_id=client_order_id,
            quote_of=self._quote_of,
            slippage_bps=self.slippage_bps,
            now=self.now(),
        )

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        return book.paper_positions_open(account_ref=account_ref)

    def open_orders(self, *, account_ref: str) -> list[VenueOrder]:
        return book.paper_orders_open(account_ref=account_ref)

    def close_position(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        size: Decimal | None = None,
        client_order_id: str = "",
    ) -> VenueOrder:
        closed = book.paper_position_close(
            account_ref=account_ref,
            venue_position_id=venue_position_id,
            size=size,
            quote_of=self._quote_of,
            slippage_bps=self.slippage_bps,
            client_order_id=client_order_id,
            executes_at=self._executes_at(),
        )
        return self._answer(closed, "close_position")
