"""The price feed: keeps every active pair's price hot and fans ticks out.

One loop per process (``manage.py pricefeed``). Each round it routes every active pair and
polls the venues for the quotes of their pairs, one ``prices()`` call per venue (venues in
parallel), hands each quote to ``price_tick_ingest`` (cache, WebSocket group, tick hooks
such as the trigger engine and the paper venue's order matching) and sleeps until the next
round. The tick hooks run on threads of their own (``TickHookRunner``, per symbol in order):
a crash tick whose hook claims thousands of stops does not hold back other symbols' prices.
A venue that fails is backed off exponentially (and its circuit breaker opens), the others
keep ticking; pairs fall back to their next venue through routing. Several feed
processes may run: ticks are idempotent writes of the latest price.

A venue that can stream (``PriceStreaming``, such as Lighter over its WebSocket, whose REST
limit a polling feed would exceed) gets a thread of its own instead, streaming the pairs it is
the primary venue of into ``price_tick_ingest`` as they change. Its pairs are polled only
while the stream has no live quote for them (not connected yet, disconnected, resubscribing),
so they keep their prices through an outage, backoff and fallback venues included. The
streamed pairs are worked out again every round: a stream whose set changed (routing, the
catalogue, a new configuration of the venue) is restarted with the new set. ``run_once``
(``pricefeed --once``) only polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import close_old_connections, connection
from django_redis import get_redis_connection

from marqetfi.core.errors import ApplicationError
from pricing.models import TradingPair
from pricing.services.prices import TickHookRunner, price_tick_ingest
from providers import registry
from providers.base import PriceStreaming, Quote
from providers.breaker import call_provider
from providers.errors import NoVenueAvailable, ProviderError
from providers.services.routing import route

logger = logging.getLogger(__name__)

HEARTBEAT_KEY = "marqetfi:feed:heartbeat"
MAX_BACKOFF_SECONDS = 60.0


@dataclass
class VenueBackoff:
    failures: int = 0
    retry_at: float = 0.0

    def failed(self, now: float, base: float) -> None:
        self.failures += 1
        self.retry_at = now + min(MAX_BACKOFF_SECONDS, base * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        self.failures, self.retry_at = 0, 0.0


@dataclass(eq=False)
class VenueStream:
    """One venue's streaming thread, the symbols it streams and those it has live quotes for."""

    venue: str
    adapter: PriceStreaming
    symbols: frozenset[str]
    stop: threading.Event = field(default_factory=threading.Event)
    live: frozenset[str] = frozenset()
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


@dataclass
class PriceFeed:
    interval: float = 1.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    backoff: dict[str, VenueBackoff] = field(default_factory=lambda: defaultdict(VenueBackoff))
    rounds: int = 0
    stream: bool = True  # run_forever streams the venues that can; False polls everything
    stream_join_seconds: float = 5.0
    streams: dict[str, VenueStream] = field(default_factory=dict)
    # run_forever runs the tick hooks on this many threads of their own (``TickHookRunner``):
    # a slow hook never delays another symbol's cache write. 0: in the ingesting thread.
    hook_workers: int = 4
    hooks: TickHookRunner | None = None

    def routes(self, pairs: Iterable[TradingPair]) -> dict[str, list[str]]:
        """The usable venues of every pair that has one, best first."""
        routed: dict[str, list[str]] = {}
        for pair in pairs:
            try:
                decision = route(symbol=pair.symbol, category=pair.category, purpose="price")
            except NoVenueAvailable:
                continue
            routed[pair.symbol] = decision.venues
        return routed

    def plan(self, pairs: Iterable[TradingPair]) -> dict[str, list[str]]:
        """Symbols per venue to poll this round: each pair's first routed venue not backing
        off, unless its primary venue's stream has a live quote for it."""
        return self._poll_plan(self.routes(pairs))

    def _poll_plan(self, routes: Mapping[str, list[str]]) -> dict[str, list[str]]:
        now = time.monotonic()
        by_venue: dict[str, list[str]] = defaultdict(list)
        for symbol, venues in routes.items():
            stream = self.streams.get(venues[0])
            if stream is not None and symbol in stream.live:
                continue
            venue = next((v for v in venues if self.backoff[v].retry_at <= now), None)
            if venue is not None:
                by_venue[venue].append(symbol)
        return by_venue

    def fetch_venue(self, venue: str, symbols: list[str]) -> int:
        """One venue's quotes, ingested; returns how many ticks went out."""
        try:
            adapter = registry.venue(venue)
            quotes = call_provider(venue, adapter.prices, symbols=symbols)
        except ProviderError as exc:
            self.backoff[venue].failed(time.monotonic(), self.interval)
            logger.warning("Price feed: %s failed (%s); backing off", venue, exc)
            return 0
        finally:
            close_old_connections()
        self.backoff[venue].succeeded()
        stream = self.streams.get(venue)
        # A stream that went live during the call has quotes at least as fresh: keep those.
        live = stream.live if stream is not None else frozenset()
        return sum(self._ingest(venue, quote) for quote in quotes.values() if quote.symbol not in live)

    def run_once(self) -> int:
        """One polling round over every active pair (none is streamed unless ``run_forever``
        runs streams); returns how many ticks went out."""
        return self._round(streaming=False)

    def run_forever(self) -> None:
        mode = "streaming where venues can" if self.stream else "polling only"
        logger.info("Price feed started (every %.2f s, %s)", self.interval, mode)
        if self.hook_workers > 0:
            self.hooks = TickHookRunner(self.hook_workers, name="feed-hooks")
        try:
            while not self.stop_event.is_set():
                started = time.monotonic()
                try:
                    self._round(streaming=self.stream)
                except Exception:
                    logger.exception("Price feed round failed")
                finally:
                    close_old_connections()
                self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            self.streams_stop()
            if self.hooks is not None:  # the ticks ingested still reach the hooks
                self.hooks.stop()
                self.hooks = None
        logger.info("Price feed stopped after %s rounds", self.rounds)

    def _round(self, *, streaming: bool) -> int:
        pairs = list(TradingPair.objects.filter(active=True).only("symbol", "category"))
        routes = self.routes(pairs)
        if streaming:
            self.streams_sync(routes)
        plan = self._poll_plan(routes)
        ticks = 0
        if plan:
            with ThreadPoolExecutor(max_workers=min(8, len(plan)), thread_name_prefix="feed") as pool:
                ticks = sum(pool.map(lambda item: self.fetch_venue(*item), plan.items()))
        get_redis_connection("default").set(HEARTBEAT_KEY, str(time.time()), ex=60)
        self.rounds += 1
        return ticks

    def _ingest(self, venue: str, quote: Quote) -> bool:
        try:
            return price_tick_ingest(
                symbol=quote.symbol,
                bid=quote.bid,
                ask=quote.ask,
                provider=venue,
                ts=quote.ts,
                market_open=quote.market_open,
                hooks=self.hooks,
            )
        except ApplicationError as exc:  # a crossed or malformed quote: skip it, keep the rest
            logger.warning("Price feed: quote of %s from %s refused (%s)", quote.symbol, venue, exc)
            return False

    # --- streams ----------------------------------------------------------------------

    def streams_sync(self, routes: Mapping[str, list[str]]) -> None:
        """Stream each pair from its primary venue when that venue can stream: start the
        streams missing, restart those whose symbols or adapter changed or whose thread ended,
        stop those no longer wanted."""
        adapters: dict[str, PriceStreaming | None] = {}
        wanted: dict[str, set[str]] = defaultdict(set)
        for symbol, venues in routes.items():
            venue = venues[0]
            if venue not in adapters:
                adapters[venue] = _streaming_adapter(venue)
            if adapters[venue] is not None:
                wanted[venue].add(symbol)
        outdated = [
            stream
            for venue, stream in self.streams.items()
            if stream.symbols != wanted.get(venue)
            or stream.adapter is not adapters.get(venue)
            or not stream.running
        ]
        self._streams_end(outdated)
        for venue, symbols in wanted.items():
            adapter = adapters[venue]
            if venue not in self.streams and adapter is not None:
                self._stream_start(venue, adapter, frozenset(symbols))

    def streams_stop(self) -> None:
        """Stop every stream and wait for its thread (its connection closed)."""
        self._streams_end(list(self.streams.values()))

    def _stream_start(self, venue: str, adapter: PriceStreaming, symbols: frozenset[str]) -> None:
        stream = VenueStream(venue=venue, adapter=adapter, symbols=symbols)
        stream.thread = threading.Thread(
            target=self._stream_run, args=(stream,), name=f"feed-stream-{venue}", daemon=True
        )
        self.streams[venue] = stream
        logger.info("Price feed: streaming %s from %s", ", ".join(sorted(symbols)), venue)
        stream.thread.start()

    def _streams_end(self, streams: list[VenueStream]) -> None:
        for stream in streams:
            stream.stop.set()
        for stream in streams:
            if stream.thread is not None:
                stream.thread.join(self.stream_join_seconds)
                if stream.thread.is_alive():
                    logger.warning("Price feed: the %s stream did not stop in time", stream.venue)
            if self.streams.get(stream.venue) is stream:
                del self.streams[stream.venue]

    def _stream_run(self, stream: VenueStream) -> None:
        def on_quote(quote: Quote) -> None:
            if quote.symbol in stream.symbols and not stream.stop.is_set():
                self._ingest(stream.venue, quote)
                close_old_connections()

        def on_live(symbols: frozenset[str]) -> None:
            stream.live = symbols & stream.symbols

        try:
            stream.adapter.stream_prices(
                symbols=sorted(stream.symbols), on_quote=on_quote, stop=stream.stop, on_live=on_live
            )
        except Exception:  # the contract says it never raises; a bug must not end the feed
            logger.exception("Price feed: the %s stream failed", stream.venue)
        finally:
            stream.live = frozenset()
            connection.close()


def _streaming_adapter(venue: str) -> PriceStreaming | None:
    """The venue's adapter if it can stream prices; None otherwise (or if it cannot be built)."""
    try:
        adapter = registry.venue(venue)
    except ProviderError:
        return None
    return adapter if isinstance(adapter, PriceStreaming) else None
