"""The price feed: keeps every active pair's price hot and fans ticks out.

One loop per process (``manage.py pricefeed``): each round it asks every routed venue for
the quotes of its pairs in one call (venues in parallel), hands each quote to
``price_tick_ingest`` (cache, WebSocket group, tick hooks such as the trigger engine and
the paper venue's order matching) and sleeps until the next round. A venue that fails is
backed off exponentially (and its circuit breaker opens), the others keep ticking; pairs
fall back to their next venue through routing. Several feed processes may run: ticks are
idempotent writes of the latest price.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import close_old_connections
from django_redis import get_redis_connection

from pricing.models import TradingPair
from pricing.services.prices import price_tick_ingest
from providers import registry
from providers.base import Venue
from providers.errors import ProviderError
from providers.health import call_provider
from providers.services.routing import NoVenueAvailable, route

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


@dataclass
class PriceFeed:
    interval: float = 1.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    backoff: dict[str, VenueBackoff] = field(default_factory=lambda: defaultdict(VenueBackoff))
    rounds: int = 0

    def plan(self, pairs: Iterable[TradingPair]) -> dict[str, list[str]]:
        """Symbols per venue for this round: each pair's first routed venue not backing off."""
        now = time.monotonic()
        by_venue: dict[str, list[str]] = defaultdict(list)
        for pair in pairs:
            try:
                decision = route(symbol=pair.symbol, category=pair.category, purpose="price")
            except NoVenueAvailable:
                continue
            venue = next((v for v in decision.venues if self.backoff[v].retry_at <= now), None)
            if venue is not None:
                by_venue[venue].append(pair.symbol)
        return by_venue

    def fetch_venue(self, venue: str, symbols: list[str]) -> int:
        """One venue's quotes, ingested; returns how many ticks went out."""
        try:
            adapter = registry.adapter(venue)
            assert isinstance(adapter, Venue)
            quotes = call_provider(venue, adapter.prices, symbols=symbols)
        except (ProviderError, AssertionError) as exc:
            self.backoff[venue].failed(time.monotonic(), self.interval)
            logger.warning("Price feed: %s failed (%s); backing off", venue, exc)
            return 0
        finally:
            close_old_connections()
        self.backoff[venue].succeeded()
        for quote in quotes.values():
            price_tick_ingest(
                symbol=quote.symbol,
                bid=quote.bid,
                ask=quote.ask,
                provider=venue,
                ts=quote.ts,
                market_open=quote.market_open,
            )
        return len(quotes)

    def run_once(self) -> int:
        pairs = list(TradingPair.objects.filter(active=True).only("symbol", "category"))
        plan = self.plan(pairs)
        if not plan:
            return 0
        with ThreadPoolExecutor(max_workers=min(8, len(plan)), thread_name_prefix="feed") as pool:
            ticks = sum(pool.map(lambda item: self.fetch_venue(*item), plan.items()))
        get_redis_connection("default").set(HEARTBEAT_KEY, str(time.time()), ex=60)
        self.rounds += 1
        return ticks

    def run_forever(self) -> None:
        logger.info("Price feed started (every %.2f s)", self.interval)
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except Exception:
                logger.exception("Price feed round failed")
            finally:
                close_old_connections()
            self.stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))
        logger.info("Price feed stopped after %s rounds", self.rounds)
