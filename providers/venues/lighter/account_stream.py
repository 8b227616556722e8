"""Lighter's account WebSocket channel ``account_all_orders/{account}``, with REST polling
while it is down.

The channel is private: the subscription carries an auth token of the account's API key
(``{"type": "subscribe", "channel": "account_all_orders/281", "auth": "<token>"}``). Lighter
answers ``subscribed/account_all_orders`` with the account's orders, then sends
``update/account_all_orders`` whenever one changes; both hold ``orders``, a map of market id
to a list of ``Order`` (the REST model: ``client_order_index``, ``status``,
``filled_base_amount``, ...). The channel is named with a colon in messages
(``"account_all_orders:281"``).

While no connection is up (refused, dropped, an error frame), ``poll`` (the REST
``accountActiveOrders`` / ``accountInactiveOrders`` reads) runs every ``poll_seconds``, so
an order's outcome arrives either way. Orders go to ``on_orders`` as Lighter's dicts; the
adapter maps them to ``VenueOrder`` by client order index.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

from providers.errors import ProviderError
from providers.http import user_agent
from providers.venues.lighter.stream import StreamTimings

logger = logging.getLogger(__name__)

PROVIDER: Final = "lighter"
ACCOUNT_ALL_ORDERS: Final = "account_all_orders"
_PONG: Final = json.dumps({"type": "pong"})
_MAX_FRAME_BYTES: Final = 8 * 1024 * 1024

OrdersSink = Callable[[list[dict[str, Any]]], None]


def account_stream_url(ws_url: str) -> str:
    """Private channels need a full connection: the price stream's ``readonly`` flag is dropped."""
    return ws_url.split("?", 1)[0]


class LighterAccountOrders:
    """Follows one account's orders until ``stop`` (or ``closed``) is set; see the module."""

    def __init__(
        self,
        *,
        url: str,
        account_index: int,
        auth: Callable[[], str],
        poll: Callable[[], list[dict[str, Any]]],
        on_orders: OrdersSink,
        on_live: Callable[[bool], None] | None,
        stop: threading.Event,
        closed: threading.Event,
        timings: StreamTimings,
        poll_seconds: float,
    ) -> None:
        self._url = url
        self._account = account_index
        self._auth = auth
        self._poll = poll
        self._on_orders = on_orders
        self._on_live = on_live
        self._stop = stop
        self._closed = closed
        self._timings = timings
        self._poll_seconds = poll_seconds

    def run(self) -> None:
        failures = 0
        while not self._stopping():
            healthy = self._session()
            self._live(False)
            if self._stopping():
                return
            failures = 0 if healthy else failures + 1
            self._poll_for(self._timings.backoff(failures))

    def _session(self) -> bool:
        channel = f"{ACCOUNT_ALL_ORDERS}/{self._account}"
        try:
            with connect(
                self._url,
                open_timeout=self._timings.open_timeout,
                close_timeout=self._timings.close_timeout,
                user_agent_header=user_agent(),
                max_size=_MAX_FRAME_BYTES,
            ) as ws:
                ws.send(json.dumps({"type": "subscribe", "channel": channel, "auth": self._auth()}))
                subscribed = False
                while not self._stopping():
                    try:
                        raw = ws.recv(timeout=self._timings.poll_seconds)
                    except TimeoutError:
                        continue
                    message = json.loads(raw)
                    kind = str(message.get("type", "")) if isinstance(message, dict) else ""
                    if kind == "ping":
                        ws.send(_PONG)
                    elif kind == "error":
                        logger.warning("lighter account stream: error frame %s", str(raw)[:300])
                        return False
                    elif kind.endswith(ACCOUNT_ALL_ORDERS):
                        if not subscribed:
                            subscribed = True
                            self._live(True)
                        self._emit(_orders_of(message))
                return True
        except ConnectionClosed:
            return True
        except ProviderError as exc:
            logger.warning("lighter account stream: %s", exc.message, extra={"provider": PROVIDER})
        except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
            logger.warning(
                "lighter account stream: %s (%s: %s)",
                self._url,
                type(exc).__name__,
                exc,
                extra={"provider": PROVIDER},
            )
        except Exception:  # a bug here must end this session, never the thread that runs it
            logger.exception("lighter account stream failed unexpectedly", extra={"provider": PROVIDER})
        return False

    def _poll_for(self, seconds: float) -> None:
        """Poll now, then every ``poll_seconds`` until ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            try:
                self._emit(self._poll())
            except ProviderError as exc:
                logger.warning("lighter order polling: %s", exc.message, extra={"provider": PROVIDER})
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, self._poll_seconds))

    def _emit(self, orders: list[dict[str, Any]]) -> None:
        if not orders:
            return
        try:
            self._on_orders(orders)
        except Exception:  # the consumer's failure must not drop the connection
            logger.exception("lighter account stream: orders were not taken")

    def _live(self, live: bool) -> None:
        if self._on_live is not None:
            try:
                self._on_live(live)
            except Exception:
                logger.exception("lighter account stream: the live flag was not taken")

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._closed.is_set()


def _orders_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The orders of an ``account_all_orders`` message: a map of market id to lists (or a list)."""
    orders = message.get("orders") or {}
    groups = orders.values() if isinstance(orders, dict) else [orders]
    return [
        order for group in groups if isinstance(group, list) for order in group if isinstance(order, dict)
    ]
