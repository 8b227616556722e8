"""Lighter's WebSocket (``/stream``): live best bid and ask from the order book channels.

The only module that talks to Lighter over a WebSocket (``client.py`` holds the REST calls).
One connection carries every market wanted (providers.md, "Lighter", "WebSocket"):

- the server greets with ``{"type": "connected"}``; we then subscribe to
  ``order_book/{market_id}`` for each market;
- each subscription is answered ``subscribed/order_book`` with the whole book, then
  ``update/order_book`` diffs, where a level of ``size`` "0" is removed. Messages name the
  channel with a colon: ``"order_book:0"``;
- a server ``{"type": "ping"}`` is answered ``{"type": "pong"}``; Lighter wants a frame at
  least every 2 minutes, so we also ping when we have been quiet for ``heartbeat_seconds``;
- ``{"type": "shutdown"}`` announces that the server closes: we reconnect;
  ``{"type": "error"}`` is logged and the connection reopened after a backoff, since an error
  may concern any subscription.

The best bid and ask come from the book kept here. A quote goes out when they change, and
again every ``refresh_seconds`` while the connection is up: the book being quiet does not
make its price old (the cache and the staleness checks go by the quote's time).

Reconnecting waits ``backoff_seconds`` x 2^(failed sessions in a row), at most
``max_backoff_seconds``, half of it random so that many processes do not reconnect in step.
A session that received its books and was then closed by the server (a disconnect, a
shutdown) resets the count; one ended by an error frame, a malformed message or a silent line
(nothing for ``idle_seconds``) does not.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from django.utils import timezone
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from providers.base import Quote
from providers.errors import ProviderError
from providers.http import user_agent

logger = logging.getLogger(__name__)

PROVIDER: Final = "lighter"
ORDER_BOOK: Final = "order_book"
_PING: Final = json.dumps({"type": "ping"})
_PONG: Final = json.dumps({"type": "pong"})
_MAX_FRAME_BYTES: Final = 8 * 1024 * 1024  # a deep book's snapshot is large
_LOGGED_FRAME_CHARS: Final = 300


def stream_url_for(base_url: str) -> str:
    """The WebSocket of a REST base URL: ``https://host`` -> ``wss://host/stream?readonly=true``.

    ``readonly=true`` lets market data through Lighter's IP-region restriction; prices need
    nothing else.
    """
    url = base_url.rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url.removeprefix("https://")
    elif url.startswith("http://"):
        url = "ws://" + url.removeprefix("http://")
    return f"{url}/stream?readonly=true"


@dataclass(frozen=True)
class StreamTimings:
    """How a stream paces itself; every value in seconds."""

    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    refresh_seconds: float = 1.0
    heartbeat_seconds: float = 30.0
    idle_seconds: float = 150.0  # nothing received for this long: the connection is dead
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    poll_seconds: float = 0.2  # how often a waiting stream looks at its stop flag

    def backoff(self, failures: int) -> float:
        """The wait before reconnecting after ``failures`` failed sessions in a row."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** min(failures, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


class OrderBook:
    """One market's book as its channel describes it: size per price level, per side."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def replace(self, payload: Any) -> None:
        """Take a snapshot (``subscribed/order_book``) as the whole book."""
        self.bids.clear()
        self.asks.clear()
        self.apply(payload)

    def apply(self, payload: Any) -> None:
        """Apply a diff (``update/order_book``): a level's new size, "0" removing it."""
        if not isinstance(payload, dict):
            raise ProviderError(
                PROVIDER, "an order book message holds no order_book object", response=payload
            )
        for side, levels in (("bids", self.bids), ("asks", self.asks)):
            for price, size in _levels(payload, side):
                if size == 0:
                    levels.pop(price, None)
                else:
                    levels[price] = size

    def best(self) -> tuple[Decimal, Decimal] | None:
        """(highest bid, lowest ask), or None while a side is empty."""
        if not self.bids or not self.asks:
            return None
        return max(self.bids), min(self.asks)


class LighterPriceStream:
    """Streams the quotes of ``symbols`` until ``stop`` (or ``closed``) is set; see the module."""

    def __init__(
        self,
        *,
        url: str,
        markets: Callable[[], Mapping[str, int]],
        symbols: list[str],
        on_quote: Callable[[Quote], None],
        on_live: Callable[[frozenset[str]], None] | None,
        stop: threading.Event,
        closed: threading.Event | None = None,
        timings: StreamTimings | None = None,
    ) -> None:
        """``markets`` maps our symbols to Lighter market ids; it is read at every connection,
        so markets listed or delisted meanwhile are picked up."""
        self._url = url
        self._markets = markets
        self._symbols = list(dict.fromkeys(symbol.upper() for symbol in symbols))
        self._on_quote = on_quote
        self._on_live = on_live
        self._stop = stop
        self._closed = closed or threading.Event()
        self._timings = timings or StreamTimings()
        self._live: frozenset[str] = frozenset()

    def run(self) -> None:
        failures = 0
        try:
            while not self._stopping():
                healthy = self._session()
                self._report_live(frozenset())
                if self._stopping():
                    break
                failures = 0 if healthy else failures + 1
                delay = self._timings.backoff(failures)
                logger.info(
                    "lighter price stream reconnects in %.2f s (%d failed in a row)",
                    delay,
                    failures,
                    extra={"provider": PROVIDER},
                )
                self._sleep(delay)
        finally:
            self._report_live(frozenset())

    # --- one connection ---------------------------------------------------------------

    def _session(self) -> bool:
        """Connect, subscribe and stream until the connection ends or the stream is stopped.

        Returns whether the session was healthy: its books arrived and no error ended it.
        """
        try:
            markets = self._markets()
            wanted = {int(markets[symbol]): symbol for symbol in self._symbols if symbol in markets}
            unknown = [symbol for symbol in self._symbols if symbol not in markets]
            if unknown:
                logger.info("lighter price stream: no Lighter market for %s", ", ".join(unknown))
            if not wanted:
                return False
            with connect(
                self._url,
                open_timeout=self._timings.open_timeout,
                close_timeout=self._timings.close_timeout,
                user_agent_header=user_agent(),
                max_size=_MAX_FRAME_BYTES,
            ) as ws:
                return _Session(self, ws, wanted).run()
        except ProviderError as exc:
            logger.warning(
                "lighter price stream: %s; reconnecting", exc.message, extra={"provider": PROVIDER}
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            logger.warning(
                "lighter price stream: connection to %s failed (%s: %s)",
                self._url,
                type(exc).__name__,
                exc,
                extra={"provider": PROVIDER},
            )
        except Exception:  # a bug here must end this session, never the thread that runs it
            logger.exception("lighter price stream failed unexpectedly", extra={"provider": PROVIDER})
        return False

    def _publish(self, quote: Quote) -> None:
        try:
            self._on_quote(quote)
        except Exception:  # the consumer's failure must not drop the connection
            logger.exception("lighter price stream: a quote of %s was not taken", quote.symbol)

    # --- helpers ----------------------------------------------------------------------

    def _report_live(self, live: frozenset[str]) -> None:
        if live == self._live:
            return
        self._live = live
        if self._on_live is None:
            return
        try:
            self._on_live(live)
        except Exception:
            logger.exception("lighter price stream: the live symbols were not taken")

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._closed.is_set()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, self._timings.poll_seconds))


class _Session:
    """One connection: the books of the markets wanted, kept from their channels."""

    def __init__(self, stream: LighterPriceStream, ws: Connection, wanted: dict[int, str]) -> None:
        self._stream = stream
        self._timings = stream._timings
        self._ws = ws
        self._wanted = wanted  # market id -> our symbol
        self._books: dict[int, OrderBook] = {}
        self._sent: dict[int, tuple[Decimal, Decimal]] = {}
        now = time.monotonic()
        self._last_received = self._last_sent = self._last_refresh = now

    def run(self) -> bool:
        """Receive until the connection ends (healthy: the books arrived, no error frame) or
        the stream is stopped (True)."""
        while not self._stream._stopping():
            self._keep_alive()
            try:
                raw = self._ws.recv(timeout=min(self._timings.poll_seconds, self._timings.refresh_seconds))
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                logger.warning(
                    "lighter price stream: connection closed (%s); reconnecting",
                    exc,
                    extra={"provider": PROVIDER},
                )
                return bool(self._books)
            self._last_received = time.monotonic()
            message = _message(raw)
            if message is None:
                continue
            ended = self._handle(message, raw)
            if ended is not None:
                return ended
        return True

    def _keep_alive(self) -> None:
        """Restamp every book's quote, ping when we have been quiet, give up on a dead line."""
        now = time.monotonic()
        if now - self._last_received > self._timings.idle_seconds:
            raise ProviderError(PROVIDER, f"nothing received for {now - self._last_received:.0f} s")
        if now - self._last_sent >= self._timings.heartbeat_seconds:
            self._send(_PING)
        if now - self._last_refresh >= self._timings.refresh_seconds:
            self._last_refresh = now
            for market_id in list(self._books):
                self._emit(market_id, force=True)

    def _handle(self, message: dict[str, Any], raw: str | bytes) -> bool | None:
        """Act on one message; a bool ends the session (whether it was healthy)."""
        kind = message.get("type")
        if kind == "connected":
            for market_id in self._wanted:
                self._send(json.dumps({"type": "subscribe", "channel": f"{ORDER_BOOK}/{market_id}"}))
        elif kind == "ping":
            self._send(_PONG)
        elif kind in (f"subscribed/{ORDER_BOOK}", f"update/{ORDER_BOOK}"):
            self._book_message(message, snapshot=kind == f"subscribed/{ORDER_BOOK}")
        elif kind == "shutdown":
            logger.info(
                "lighter price stream: the server shuts down (%s); reconnecting",
                _shown(raw),
                extra={"provider": PROVIDER},
            )
            return bool(self._books)
        elif kind == "error":
            logger.warning(
                "lighter price stream: Lighter sent an error: %s; reconnecting",
                _shown(raw),
                extra={"provider": PROVIDER},
            )
            return False
        return None

    def _book_message(self, message: dict[str, Any], *, snapshot: bool) -> None:
        market_id = _market_id(message.get("channel"))
        if market_id is None or market_id not in self._wanted:
            return
        if snapshot:
            self._books.setdefault(market_id, OrderBook()).replace(message.get(ORDER_BOOK))
            self._stream._report_live(frozenset(self._wanted[m] for m in self._books))
        elif market_id in self._books:
            self._books[market_id].apply(message.get(ORDER_BOOK))
        else:
            return  # a diff before its snapshot: the snapshot includes it
        self._emit(market_id, force=False)

    def _emit(self, market_id: int, *, force: bool) -> None:
        best = self._books[market_id].best()
        if best is None or (not force and self._sent.get(market_id) == best):
            return
        bid, ask = best
        symbol = self._wanted[market_id]
        if bid > ask:
            logger.debug("lighter price stream: the %s book is crossed (%s > %s)", symbol, bid, ask)
            return
        self._sent[market_id] = best
        self._stream._publish(Quote(symbol=symbol, bid=bid, ask=ask, ts=timezone.now()))

    def _send(self, payload: str) -> None:
        self._ws.send(payload)
        self._last_sent = time.monotonic()


def _message(raw: str | bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except ValueError:
        logger.warning("lighter price stream: a frame that is not JSON ignored: %s", _shown(raw))
        return None
    if not isinstance(message, dict):
        logger.warning("lighter price stream: a frame that is not an object ignored: %s", _shown(raw))
        return None
    return message


def _market_id(channel: Any) -> int | None:
    """``"order_book:0"`` (or ``"order_book/0"``) -> 0; None for any other channel."""
    if not isinstance(channel, str):
        return None
    name, _, market = channel.replace("/", ":").partition(":")
    if name != ORDER_BOOK or not market.isdigit():
        return None
    return int(market)


def _levels(book: dict[str, Any], side: str) -> list[tuple[Decimal, Decimal]]:
    levels = book.get(side) or []
    if not isinstance(levels, list):
        raise ProviderError(PROVIDER, f"the order book's {side} are not a list", response=book)
    parsed = []
    for level in levels:
        if not isinstance(level, dict):
            raise ProviderError(PROVIDER, f"an order book {side} level is not an object", response=book)
        price = _decimal(level.get("price"), f"{side} price")
        size = _decimal(level.get("size"), f"{side} size")
        if price <= 0 or size < 0:
            raise ProviderError(PROVIDER, f"an order book {side} level is out of range: {level}")
        parsed.append((price, size))
    return parsed


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ProviderError(PROVIDER, f"{what} is missing or not a number: {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ProviderError(PROVIDER, f"{what} is not a number: {value!r}") from None
    if not result.is_finite():
        raise ProviderError(PROVIDER, f"{what} is not a finite number: {value!r}")
    return result


def _shown(raw: str | bytes) -> str:
    text = raw if isinstance(raw, str) else raw.decode(errors="replace")
    return text if len(text) <= _LOGGED_FRAME_CHARS else text[:_LOGGED_FRAME_CHARS] + "..."
