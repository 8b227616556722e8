"""Prices: one Redis entry per symbol in front of the routed venues.

Reads (``price_get``, ``prices_get``) answer from the cache; a symbol that is not there
(or older than the ``max_age_ms`` asked for) is fetched from its routed venues, primary
first, falling back to the next venue when one fails or has no quote. Misses of one
request are grouped per venue, one ``prices()`` call each, the venues asked in parallel.
Every answer is judged when it is read: ``age_ms`` against the staleness limit of the
pair's category (the ``price_staleness_limit_ms`` app setting) and the market state
against the pair's trading hours and the venue's own flag.

Single flight: however many requests miss the same symbol at once, one venue call is
made. Within a process the first thread owns the symbol's flight and the others wait on
an event; across processes the owner also holds a Redis lock (``SET NX PX``) and the
others poll until it is released, then read what it cached (or the failure it left for
them). Waiting is bounded by ``PRICE_FILL_WAIT_MS``; a holder that dies frees the lock
after ``PRICE_FETCH_LOCK_MS``.

Writes (``price_tick_ingest``, used by the price feed and the paper venue) store a tick,
publish it on the ``prices:<SYMBOL>`` stream channel and hand it to the
``PRICE_TICK_HOOKS`` (the trigger engine). The cache never goes back in time: a tick
older than the cached one is dropped, whoever wrote it.

Execution (``price_for_execution``) is the only door for fills and triggers: it returns a
price that is fresh and from an open market, or raises ``StalePrice`` / ``MarketClosed``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import queue
import threading
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from django.utils.module_loading import import_string
from django_redis import get_redis_connection
from prometheus_client import Counter
from redis import Redis

from marqetfi.core import realtime
from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.errors import ApplicationError
from marqetfi.core.formats import decimal_text, timestamp_text
from pricing.app_settings import PRICE_CACHE_TTL_SECONDS, PRICE_STALENESS_LIMIT_MS
from pricing.errors import (
    InvalidPrice,
    MarketClosed,
    NoVenueAvailable,
    PriceUnavailable,
    StalePrice,
    UnknownSymbol,
)
from pricing.market_hours import MarketState, market_open
from pricing.metrics import PRICE_CACHE_HITS, PRICE_CACHE_MISSES
from pricing.models import TradingPair
from pricing.selectors import pair_get_cached, pairs_by_symbol, symbol_normalize
from providers import registry
from providers.base import Quote, Venue
from providers.breaker import call_provider
from providers.errors import ProviderError, ProviderUnavailable
from providers.services.routing import route

logger = logging.getLogger("pricing.prices")

KEY_PREFIX: Final = "marqetfi:price:"
MAX_SYMBOL_LENGTH: Final = 32
# How long a failed fetch is remembered for the requests that waited on it.
FAILURE_MEMO_MS: Final = 2000
POLL_INTERVAL_SECONDS: Final = 0.02

# Store the tick unless the cached one is newer, and forget any failure remembered for the
# symbol. KEYS: price key, failure key. ARGV: json, ts_ms, ttl_ms.
_STORE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, cached = pcall(cjson.decode, current)
  if ok and tonumber(cached['ts_ms']) and tonumber(cached['ts_ms']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"""

# Release a lock only if this flight still holds it. KEYS: lock key. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# --- Values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTick:
    """A quote as the cache holds it: what a venue said and when, and which venue said it."""

    symbol: str
    bid: Decimal
    ask: Decimal
    provider: str
    ts: datetime
    market_open: bool = True

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def ts_ms(self) -> int:
        return (self.ts - datetime.fromtimestamp(0, UTC)) // timedelta(milliseconds=1)

    def to_json(self) -> str:
        return json.dumps(
            {
                "symbol": self.symbol,
                "bid": str(self.bid),
                "ask": str(self.ask),
                "provider": self.provider,
                "ts": self.ts.astimezone(UTC).isoformat(),
                "ts_ms": self.ts_ms,
                "market_open": self.market_open,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> PriceTick:
        data = json.loads(raw)
        return cls(
            symbol=data["symbol"],
            bid=Decimal(data["bid"]),
            ask=Decimal(data["ask"]),
            provider=data["provider"],
            ts=datetime.fromisoformat(data["ts"]),
            market_open=bool(data.get("market_open", True)),
        )


@dataclass(frozen=True)
class Price:
    """A cached tick judged at one moment: how old it is, whether too old, whether the market is open."""

    symbol: str
    category: str
    bid: Decimal
    ask: Decimal
    provider: str
    ts: datetime
    age_ms: int
    stale: bool
    market: MarketState

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


def price_body(price: Price) -> dict[str, Any]:
    """The JSON object of one price, as ``GET /prices`` and the cached-price route answer it."""
    return {
        "symbol": price.symbol,
        "bid": decimal_text(price.bid),
        "ask": decimal_text(price.ask),
        "mid": decimal_text(price.mid),
        "provider": price.provider,
        "ts": timestamp_text(price.ts),
        "age_ms": price.age_ms,
        "stale": price.stale,
        "market": price.market,
    }


def staleness_limit_ms(category: str) -> int:
    """Age past which a price of ``category`` is too old to trade on (app setting, per category)."""
    return int(app_setting(PRICE_STALENESS_LIMIT_MS)[category])


def _age_ms(tick: PriceTick, at: datetime) -> int:
    return max(0, (at - tick.ts) // timedelta(milliseconds=1))


def price_judge(tick: PriceTick, pair: TradingPair, at: datetime) -> Price:
    """The cached ``tick`` of ``pair`` as a price read at ``at``."""
    age = _age_ms(tick, at)
    is_open = tick.market_open and market_open(pair.trading_hours, at)
    return Price(
        symbol=pair.symbol,
        category=pair.category,
        bid=tick.bid,
        ask=tick.ask,
        provider=tick.provider,
        ts=tick.ts,
        age_ms=age,
        stale=age > staleness_limit_ms(pair.category),
        market="open" if is_open else "closed",
    )


def _tick_problem(bid: Any, ask: Any, ts: Any) -> str | None:
    if not isinstance(bid, Decimal) or not isinstance(ask, Decimal):
        return "bid and ask must be Decimal"
    if not (bid.is_finite() and ask.is_finite()) or bid <= 0 or ask <= 0:
        return "bid and ask must be positive"
    if bid > ask:
        return "bid above ask"
    if not isinstance(ts, datetime) or ts.tzinfo is None:
        return "ts must be an aware datetime"
    return None


# --- Redis ------------------------------------------------------------------------------


def _redis() -> Redis:
    redis: Redis = get_redis_connection("default")
    return redis


def price_cache_key(symbol: str) -> str:
    return f"{KEY_PREFIX}{symbol}"


def _lock_key(symbol: str) -> str:
    return f"{KEY_PREFIX}{symbol}:fetching"


def _failure_key(symbol: str) -> str:
    return f"{KEY_PREFIX}{symbol}:failure"


def tick_parse(symbol: str, raw: bytes | str | None) -> PriceTick | None:
    if raw is None:
        return None
    try:
        return PriceTick.from_json(raw)
    except (ValueError, KeyError, TypeError, InvalidOperation):
        logger.warning("unreadable cached price of %s ignored", symbol)
        return None


def _cache_read(symbols: list[str]) -> dict[str, PriceTick]:
    raws = _redis().mget([price_cache_key(symbol) for symbol in symbols])
    ticks = {symbol: tick_parse(symbol, raw) for symbol, raw in zip(symbols, raws, strict=True)}
    return {symbol: tick for symbol, tick in ticks.items() if tick is not None}


def _cache_store(
    ticks: Iterable[PriceTick], failures: Mapping[str, ApplicationError] | None = None
) -> list[bool]:
    """Store ticks (each unless a newer one is cached) and remember failures briefly.

    Returns, per tick, whether it was stored.
    """
    ticks = list(ticks)
    ttl_ms = int(app_setting(PRICE_CACHE_TTL_SECONDS)) * 1000
    redis = _redis()
    store = redis.register_script(_STORE_IF_NEWER)

    def keys(tick: PriceTick) -> list[Any]:
        return [price_cache_key(tick.symbol), _failure_key(tick.symbol)]

    def args(tick: PriceTick) -> list[Any]:
        return [tick.to_json(), tick.ts_ms, ttl_ms]

    if len(ticks) == 1 and not failures:  # the feed's path: one round trip, no pipeline
        return [bool(store(keys=keys(ticks[0]), args=args(ticks[0])))]
    with redis.pipeline(transaction=False) as pipe:
        for tick in ticks:
            store(keys=keys(tick), args=args(tick), client=pipe)
        for symbol, error in (failures or {}).items():
            memo = {"code": error.code, "message": error.message, "details": error.details}
            pipe.set(_failure_key(symbol), json.dumps(memo, default=str), px=FAILURE_MEMO_MS)
        results = pipe.execute()
    return [bool(stored) for stored in results[: len(ticks)]]


def _locks_acquire(symbols: list[str], token: str) -> tuple[list[str], list[str]]:
    """Take each symbol's fetch lock: (symbols locked by us, symbols another process is fetching)."""
    with _redis().pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.set(_lock_key(symbol), token, nx=True, px=int(settings.PRICE_FETCH_LOCK_MS))
        taken = pipe.execute()
    locked = [symbol for symbol, ok in zip(symbols, taken, strict=True) if ok]
    return locked, [symbol for symbol, ok in zip(symbols, taken, strict=True) if not ok]


def _locks_release(symbols: list[str], token: str) -> None:
    redis = _redis()
    release = redis.register_script(_RELEASE)
    with redis.pipeline(transaction=False) as pipe:
        for symbol in symbols:
            release(keys=[_lock_key(symbol)], args=[token], client=pipe)
        pipe.execute()


_ERRORS_BY_CODE: Final[dict[str, type[ApplicationError]]] = {
    error.code: error for error in (PriceUnavailable, NoVenueAvailable, UnknownSymbol)
}


def _error_from_memo(raw: bytes) -> ApplicationError:
    memo = json.loads(raw)
    return _ERRORS_BY_CODE.get(memo.get("code"), PriceUnavailable)(
        memo.get("message"), details=memo.get("details")
    )


def _outcome_after_flight(
    symbol: str, raw_tick: bytes | None, raw_failure: bytes | None
) -> PriceTick | ApplicationError:
    """What a request that waited on another's fetch answers: its tick, its failure, or unavailable."""
    tick = tick_parse(symbol, raw_tick)
    if tick is not None:
        return tick
    if raw_failure is not None:
        return _error_from_memo(raw_failure)
    return PriceUnavailable(details={"symbol": symbol, "reason": "fetch_ended_without_price"})


def _await_other_processes(symbols: list[str], deadline: float) -> dict[str, PriceTick | ApplicationError]:
    """Poll until each symbol's fetch lock is released, then take what its holder left."""
    outcomes: dict[str, PriceTick | ApplicationError] = {}
    pending = list(symbols)
    redis = _redis()
    while pending:
        with redis.pipeline(transaction=False) as pipe:
            for symbol in pending:
                pipe.exists(_lock_key(symbol))
                pipe.get(price_cache_key(symbol))
                pipe.get(_failure_key(symbol))
            replies = pipe.execute()
        still = []
        for index, symbol in enumerate(pending):
            locked, raw_tick, raw_failure = replies[3 * index : 3 * index + 3]
            if locked:
                still.append(symbol)
            else:
                outcomes[symbol] = _outcome_after_flight(symbol, raw_tick, raw_failure)
        pending = still
        if pending and time.monotonic() >= deadline:
            break
        if pending:
            time.sleep(POLL_INTERVAL_SECONDS)
    for symbol in pending:
        outcomes[symbol] = PriceUnavailable(details={"symbol": symbol, "reason": "timeout_waiting_for_fetch"})
    return outcomes


def _read_after_flights(symbols: list[str]) -> dict[str, PriceTick | ApplicationError]:
    with _redis().pipeline(transaction=False) as pipe:
        for symbol in symbols:
            pipe.get(price_cache_key(symbol))
            pipe.get(_failure_key(symbol))
        replies = pipe.execute()
    return {
        symbol: _outcome_after_flight(symbol, replies[2 * index], replies[2 * index + 1])
        for index, symbol in enumerate(symbols)
    }


# --- In-process single flight --------------------------------------------------------------


class _Flights:
    """Which symbols a thread of this process is fetching now; the others wait on its event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def claim(self, symbols: list[str]) -> tuple[list[str], dict[str, threading.Event]]:
        """Symbols this caller now owns, and the events of those another thread already owns."""
        owned: list[str] = []
        waiting: dict[str, threading.Event] = {}
        with self._lock:
            for symbol in symbols:
                if symbol in self._events:
                    waiting[symbol] = self._events[symbol]
                else:
                    self._events[symbol] = threading.Event()
                    owned.append(symbol)
        return owned, waiting

    def finish(self, symbols: list[str]) -> None:
        with self._lock:
            events = [self._events.pop(symbol, None) for symbol in symbols]
        for event in events:
            if event is not None:
                event.set()


_flights = _Flights()


# --- Fetching from venues ----------------------------------------------------------------


def _venue_prices(name: str, venue: Venue, symbols: list[str]) -> dict[str, Quote] | Exception:
    """One ``prices()`` call through the breaker; the failure is returned, never raised."""
    try:
        return call_provider(name, venue.prices, symbols=symbols)
    except ProviderError as exc:
        logger.warning("prices from %s failed: %s", name, exc, extra={"provider": name})
        return exc
    except Exception as exc:  # an adapter bug fails over like an outage, not the whole batch
        logger.exception("prices from %s failed unexpectedly", name, extra={"provider": name})
        return exc


def _venue_prices_in_pool(name: str, venue: Venue, symbols: list[str]) -> dict[str, Quote] | Exception:
    try:
        return _venue_prices(name, venue, symbols)
    finally:
        connection.close()  # an adapter may read the database: a pool thread must not leak its connection


def _ask_venues(groups: dict[str, list[str]]) -> dict[str, dict[str, Quote] | Exception]:
    """Each venue's quotes for its symbols, the venues asked in parallel."""
    outcomes: dict[str, dict[str, Quote] | Exception] = {}
    calls: dict[str, tuple[Venue, list[str]]] = {}
    for name, symbols in groups.items():
        try:
            calls[name] = (registry.venue(name), symbols)
        except ProviderError as exc:
            outcomes[name] = exc
        except Exception as exc:  # an adapter that cannot be built fails over like an outage
            logger.exception("venue %s cannot be built", name, extra={"provider": name})
            outcomes[name] = exc
    if len(calls) == 1:
        [(name, (venue, symbols))] = calls.items()
        outcomes[name] = _venue_prices(name, venue, symbols)
    elif calls:
        workers = min(len(calls), int(settings.PRICE_FETCH_MAX_WORKERS))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="price-fetch") as pool:
            futures = {
                name: pool.submit(contextvars.copy_context().run, _venue_prices_in_pool, name, venue, symbols)
                for name, (venue, symbols) in calls.items()
            }
            for name, future in futures.items():
                outcomes[name] = future.result()
    return outcomes


def _failure_reason(outcome: dict[str, Quote] | Exception) -> str:
    if isinstance(outcome, ProviderUnavailable):
        return "circuit_open"
    if isinstance(outcome, registry.ProviderNotConfigured):
        return "not_configured"
    if isinstance(outcome, Exception):
        return "venue_error"
    return "no_quote"


def _tick_from_quote(symbol: str, quote: Quote | None, provider: str) -> PriceTick | None:
    if quote is None:
        return None
    problem = _tick_problem(quote.bid, quote.ask, quote.ts)
    if problem is not None:
        logger.warning(
            "quote of %s from %s refused: %s", symbol, provider, problem, extra={"provider": provider}
        )
        return None
    return PriceTick(
        symbol=symbol,
        bid=quote.bid,
        ask=quote.ask,
        provider=provider,
        ts=quote.ts,
        market_open=quote.market_open,
    )


def _fetch(symbols: list[str], categories: Mapping[str, str]) -> dict[str, PriceTick | ApplicationError]:
    """Ask the routed venues, one call per venue per round; a symbol a venue failed goes to its next."""
    outcomes: dict[str, PriceTick | ApplicationError] = {}
    pending: dict[str, list[str]] = {}
    for symbol in symbols:
        try:
            pending[symbol] = list(route(symbol=symbol, category=categories[symbol], purpose="price").venues)
        except NoVenueAvailable as exc:
            outcomes[symbol] = exc
    attempts: dict[str, list[dict[str, str]]] = defaultdict(list)
    while pending:
        groups: dict[str, list[str]] = defaultdict(list)
        for symbol, venues in pending.items():
            groups[venues[0]].append(symbol)
        answers = _ask_venues(groups)
        next_round: dict[str, list[str]] = {}
        for name, group in groups.items():
            answer = answers[name]
            quotes = answer if isinstance(answer, dict) else {}
            for symbol in group:
                tick = _tick_from_quote(symbol, quotes.get(symbol), name)
                if tick is not None:
                    outcomes[symbol] = tick
                    continue
                reason = "invalid_quote" if symbol in quotes else _failure_reason(answer)
                attempts[symbol].append({"venue": name, "reason": reason})
                if rest := pending[symbol][1:]:
                    next_round[symbol] = rest
                else:
                    outcomes[symbol] = PriceUnavailable(
                        details={"symbol": symbol, "attempts": attempts[symbol]}
                    )
        pending = next_round
    return outcomes


def _fill(symbols: list[str], categories: Mapping[str, str]) -> dict[str, PriceTick | ApplicationError]:
    """Fetch ``symbols`` once however many requests miss them now (see the module docstring)."""
    deadline = time.monotonic() + int(settings.PRICE_FILL_WAIT_MS) / 1000
    outcomes: dict[str, PriceTick | ApplicationError] = {}
    owned, waiting = _flights.claim(symbols)
    try:
        if owned:
            token = uuid.uuid4().hex
            locked, elsewhere = _locks_acquire(owned, token)
            try:
                if locked:
                    fetched = _fetch(locked, categories)
                    _cache_store(
                        [o for o in fetched.values() if isinstance(o, PriceTick)],
                        {s: o for s, o in fetched.items() if isinstance(o, ApplicationError)},
                    )
                    outcomes.update(fetched)
            finally:
                if locked:
                    _locks_release(locked, token)
            if elsewhere:
                outcomes.update(_await_other_processes(elsewhere, deadline))
    finally:
        _flights.finish(owned)
    if waiting:
        for event in waiting.values():
            event.wait(max(0.0, deadline - time.monotonic()))
        outcomes.update(_read_after_flights(list(waiting)))
    return outcomes


# --- Reads ----------------------------------------------------------------------------


def _count(pairs: Mapping[str, TradingPair], symbols: Iterable[str], counter: Counter) -> None:
    per_category: dict[str, int] = defaultdict(int)
    for symbol in symbols:
        per_category[pairs[symbol].category] += 1
    for category, count in per_category.items():
        counter.labels(category=category).inc(count)


def _prices_for(
    pairs: Mapping[str, TradingPair], *, max_age_ms: int | None, at: datetime | None = None
) -> tuple[list[Price], dict[str, ApplicationError]]:
    symbols = list(pairs)
    cached = _cache_read(symbols) if symbols else {}
    now = timezone.now()
    ticks = {
        symbol: tick
        for symbol, tick in cached.items()
        if max_age_ms is None or _age_ms(tick, now) <= max_age_ms
    }
    misses = [symbol for symbol in symbols if symbol not in ticks]
    _count(pairs, ticks, PRICE_CACHE_HITS)
    _count(pairs, misses, PRICE_CACHE_MISSES)
    errors: dict[str, ApplicationError] = {}
    if misses:
        for symbol, outcome in _fill(misses, {s: pairs[s].category for s in misses}).items():
            if isinstance(outcome, PriceTick):
                ticks[symbol] = outcome
            else:
                errors[symbol] = outcome
    moment = at or timezone.now()
    prices = [price_judge(ticks[symbol], pairs[symbol], moment) for symbol in symbols if symbol in ticks]
    return prices, errors


def _well_formed(symbol: str) -> bool:
    return 0 < len(symbol) <= MAX_SYMBOL_LENGTH and symbol.isascii() and symbol.isalnum()


def _symbols_parse(symbols: Iterable[str]) -> tuple[list[str], dict[str, ApplicationError]]:
    wanted: list[str] = []
    errors: dict[str, ApplicationError] = {}
    for raw in symbols:
        symbol = symbol_normalize(raw)[: MAX_SYMBOL_LENGTH + 1]
        if not symbol or symbol in wanted or symbol in errors:
            continue
        if _well_formed(symbol):
            wanted.append(symbol)
        else:
            errors[symbol] = UnknownSymbol(details={"symbol": symbol})
    return wanted, errors


def prices_get(
    symbols: Iterable[str], *, max_age_ms: int | None = None
) -> tuple[list[Price], dict[str, ApplicationError]]:
    """Prices of many symbols in the order asked, and an error per symbol that has none.

    Symbols are normalised (trimmed, upper case) and deduplicated. An unknown or malformed
    symbol is ``UnknownSymbol``; a symbol no venue could price is ``NoVenueAvailable`` or
    ``PriceUnavailable`` (with each venue tried and why it failed). None of these stops
    the others. ``max_age_ms`` refetches cached prices older than that; what the venue
    then returns is answered whatever its age (``age_ms`` and ``stale`` tell).
    """
    wanted, errors = _symbols_parse(symbols)
    found = pairs_by_symbol(wanted)
    for symbol in wanted:
        if symbol not in found:
            errors[symbol] = UnknownSymbol(details={"symbol": symbol})
    pairs = {symbol: found[symbol] for symbol in wanted if symbol in found}
    prices, fetch_errors = _prices_for(pairs, max_age_ms=max_age_ms)
    errors.update(fetch_errors)
    return prices, errors


def price_get(symbol: str, *, max_age_ms: int | None = None) -> Price:
    """The price of one symbol; raises ``UnknownSymbol`` (404), ``NoVenueAvailable`` or
    ``PriceUnavailable`` (503). A stale price is returned, flagged: use
    ``price_for_execution`` to fill or trigger."""
    prices, errors = prices_get([symbol], max_age_ms=max_age_ms)
    if prices:
        return prices[0]
    raise next(iter(errors.values()), UnknownSymbol(details={"symbol": symbol}))


def price_for_execution(symbol: str, *, at: datetime | None = None) -> Price:
    """The price to fill or trigger on: fresh and from an open market, or an error.

    Raises ``MarketClosed`` (409) outside the pair's trading hours or when the venue says
    its market is closed, ``StalePrice`` (503) when even a refetch from the venues gives a
    price older than the category's staleness limit, and whatever ``price_get`` raises.
    ``at`` is the moment the order executes, for the trading hours and the age (now, after
    any refetch, by default).
    """
    moment = at or timezone.now()
    pair = pair_get_cached(symbol=symbol)
    if not market_open(pair.trading_hours, moment):
        raise MarketClosed(details={"symbol": pair.symbol, "trading_hours": pair.trading_hours})
    limit = staleness_limit_ms(pair.category)
    prices, errors = _prices_for({pair.symbol: pair}, max_age_ms=limit, at=at)
    if not prices:
        raise errors[pair.symbol]
    price = prices[0]
    if price.market == "closed":
        raise MarketClosed(details={"symbol": pair.symbol, "provider": price.provider})
    if price.stale:
        raise StalePrice(
            details={
                "symbol": pair.symbol,
                "provider": price.provider,
                "age_ms": price.age_ms,
                "limit_ms": limit,
            }
        )
    return price


# --- Writes ---------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _hook(path: str) -> Callable[[PriceTick], Any]:
    hook: Callable[[PriceTick], Any] = import_string(path)
    return hook


def _broadcast(tick: PriceTick) -> None:
    message = {
        "symbol": tick.symbol,
        "bid": decimal_text(tick.bid),
        "ask": decimal_text(tick.ask),
        "mid": decimal_text(tick.mid),
        "ts": timestamp_text(tick.ts),
        "provider": tick.provider,
        "market_open": tick.market_open,
    }
    try:
        realtime.stream_publish(realtime.price_stream_channel(tick.symbol), message)
    except Exception:  # sockets missing a tick must not stop the cache or the triggers
        logger.exception("price tick of %s not broadcast", tick.symbol)


def _run_hooks(tick: PriceTick) -> None:
    for path in settings.PRICE_TICK_HOOKS:
        try:
            _hook(path)(tick)
        except Exception:  # one failing hook must not stop ingestion or the other hooks
            logger.exception("price tick hook %s failed on %s", path, tick.symbol)


class TickHookRunner:
    """Runs the ``PRICE_TICK_HOOKS`` of ingested ticks on threads of their own, off the
    thread that writes the cache (the price feed's), so that a slow hook (the trigger engine
    claiming a crash through thousands of stops) never delays another symbol's cache write.

    A symbol always goes to the same thread (a stable hash of it), one FIFO queue each: the
    hooks see every tick of a symbol, none skipped, in the order they were ingested, one at
    a time; another symbol's ticks wait behind a slow hook only if they share its thread.
    The queues are unbounded (a tick is never dropped); ``backlog()`` tells how far behind
    the hooks are. ``stop()`` runs what is queued, then ends the threads.
    """

    def __init__(self, workers: int = 4, *, name: str = "tick-hooks") -> None:
        self._queues: list[queue.SimpleQueue[PriceTick | None]] = [
            queue.SimpleQueue() for _ in range(max(1, workers))
        ]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"{name}-{n}", daemon=True)
            for n, q in enumerate(self._queues)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, tick: PriceTick) -> None:
        self._queues[zlib.crc32(tick.symbol.encode()) % len(self._queues)].put(tick)

    def backlog(self) -> int:
        return sum(q.qsize() for q in self._queues)

    def stop(self, timeout: float | None = None) -> None:
        for q in self._queues:
            q.put(None)
        for thread in self._threads:
            thread.join(timeout)

    @staticmethod
    def _run(ticks: queue.SimpleQueue[PriceTick | None]) -> None:
        try:
            while (tick := ticks.get()) is not None:
                _run_hooks(tick)
                close_old_connections()
        finally:
            connection.close()


def price_tick_ingest(
    *,
    symbol: str,
    bid: Decimal,
    ask: Decimal,
    provider: str,
    ts: datetime,
    market_open: bool = True,
    hooks: TickHookRunner | None = None,
) -> bool:
    """Take a tick from the price feed (or the paper venue): cache it, broadcast it, run the hooks.

    Returns False, doing nothing else, when the cache already holds a newer tick of the
    symbol. Raises ``InvalidPrice`` (400) for a non-positive or crossed quote, a float, or
    a naive ``ts``, and ``UnknownSymbol`` (404) for a malformed symbol; the catalogue itself
    is not read (this is the feed's hot path). The broadcast goes to the ``prices:<SYMBOL>``
    stream channel as ``{"symbol", "bid", "ask", "mid", "ts", "provider", "market_open"}``; each
    dotted path in ``settings.PRICE_TICK_HOOKS`` is then called with
    the ``PriceTick``, in this thread before it returns, or, given ``hooks`` (the price
    feed's), on that runner's thread for the symbol, so that this returns once the tick is
    cached and broadcast. A failing broadcast or hook is logged and skipped. Call it from
    sync code (``sync_to_async`` from a coroutine).
    """
    normalized = symbol_normalize(symbol)
    if not _well_formed(normalized):
        raise UnknownSymbol(details={"symbol": normalized[: MAX_SYMBOL_LENGTH + 1]})
    problem = _tick_problem(bid, ask, ts)
    if problem is not None:
        raise InvalidPrice(details={"symbol": normalized, "problem": problem})
    tick = PriceTick(symbol=normalized, bid=bid, ask=ask, provider=provider, ts=ts, market_open=market_open)
    [stored] = _cache_store([tick])
    if not stored:
        return False
    _broadcast(tick)
    if hooks is not None:
        hooks.submit(tick)
    else:
        _run_hooks(tick)
    return True
