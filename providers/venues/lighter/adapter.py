"""Lighter (zkLighter order-book perps) behind our ``Venue`` interface.

One configured Lighter account trades: ``account_index`` with the API key in slot
``api_key_index``. Orders of another account would need that account's own API key, so
``account_ref`` must be that account (or empty). Positions can be read for any account.

Identifiers:
- a market is Lighter's perp market id; our symbol is its base asset + "USD" ("ETH" -> "ETHUSD");
- our ``client_order_id`` (any string) becomes Lighter's 48-bit ``client_order_index`` through
  a hash (``client_order_index``), so an order is found again by the same id;
- ``venue_order_id`` is ``"<market id>:<client order index>"``: what a CancelOrder needs
  (Lighter cancels by the order index or by the client order index);
- ``venue_position_id`` is the market id: an account has one position per market.

Transactions are asynchronous on Lighter: ``sendTx`` answering 200 means the sequencer took
the transaction, not that it executed. ``place_order``, ``cancel_order`` and
``close_position`` therefore return status "pending"; ``get_order`` tells what became of it.

Prices stream too (``PriceStreaming``): ``stream_prices`` follows the ``order_book/{market}``
channels of Lighter's WebSocket (``stream``), which is how a live feed stays within Lighter's
REST limit of 60 requests a minute.

Not done here: stop loss / take profit (Lighter's separate trigger orders) and the
per-market leverage setting (an UpdateLeverage transaction): the order is sized with the
requested leverage, while Lighter margins it with the account's setting for the market.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Any, Final

from django.utils import timezone

from providers.base import (
    Market,
    MarketCategory,
    OrderType,
    PriceStreaming,
    Quote,
    Side,
    Venue,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from providers.errors import ProviderError
from providers.venues.lighter import signer
from providers.venues.lighter.client import DEFAULT_BASE_URL, LighterClient
from providers.venues.lighter.stream import LighterPriceStream, StreamTimings, stream_url_for

QUOTE_ASSET: Final = "USD"
MAX_CLIENT_ORDER_INDEX: Final = 2**48 - 1
MARGIN_FRACTION_TICK: Final = Decimal(10_000)  # margin fractions of orderBookDetails: 1e4 = 100 %
USDC_STEP: Final = Decimal("0.000001")
AUTH_TOKEN_SECONDS: Final = 10 * 60
_AUTH_TOKEN_MARGIN: Final = 60
_HUNDRED: Final = Decimal(100)

# Lighter order status -> ours. "canceled-*" reasons other than these are decided by fills.
_STATUSES: Final = {
    "in-progress": "pending",
    "pending": "pending",
    "open": "open",
    "filled": "filled",
    "canceled": "cancelled",
    "canceled-expired": "cancelled",
}


@dataclass(frozen=True)
class _LighterMarket:
    """A perp market with what orders need besides our ``Market``."""

    market: Market
    market_id: int
    size_decimals: int
    price_decimals: int
    min_base_amount: Decimal
    min_quote_amount: Decimal


def client_order_index(client_order_id: str) -> int:
    """Our client order id as Lighter's client order index (1 .. 2^48-1), always the same.

    The first 48 bits of its SHA-256; two ids share an index with odds of about 2^-48.
    """
    value = int.from_bytes(hashlib.sha256(client_order_id.encode()).digest()[:6], "big")
    return value or 1


def chain_id_for(base_url: str) -> int:
    """The chain id signatures carry, inferred from the host as Lighter's SDK does (mainnet 304)."""
    if "testnet.zklighter" in base_url or "api.rh-testnet.lighter" in base_url:
        return 300
    if "api.rh.lighter" in base_url:
        return 466324
    return 304


class LighterVenue(Venue, PriceStreaming):
    name = "lighter"

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        account_index: str | int = "",
        api_key_index: str | int = "",
        api_key_private_key: str = "",
        chain_id: str | int = "",
        timeout: float | str = 10.0,
        max_attempts: int | str = 3,
        backoff_seconds: float | str = 0.2,
        max_slippage: Decimal | str = "0.01",
        max_parallel: int | str = 4,
        markets_ttl_seconds: float | str = 60.0,
        ws_url: str = "",
        stream_backoff_seconds: float | str = 1.0,
        stream_max_backoff_seconds: float | str = 30.0,
        stream_refresh_seconds: float | str = 1.0,
    ) -> None:
        """Options arrive as strings from the provider configuration.

        ``max_slippage`` bounds the worst price of market orders (0.01 = 1 % beyond the best
        price); ``max_parallel`` bounds the concurrent order-book reads of ``prices``;
        ``markets_ttl_seconds`` is how long the market table behind prices and orders is kept.
        ``ws_url`` is the WebSocket of ``stream_prices`` (derived from ``base_url`` when empty);
        the stream reconnects after ``stream_backoff_seconds`` doubling up to
        ``stream_max_backoff_seconds``, and restamps an unchanged quote every
        ``stream_refresh_seconds``.
        """
        self._client = LighterClient(
            base_url=base_url,
            timeout=float(timeout),
            max_attempts=int(max_attempts),
            backoff_seconds=float(backoff_seconds),
        )
        self._account_index = int(account_index) if str(account_index).strip() else None
        self._key = signer.ApiKey(
            account_index=self._account_index if self._account_index is not None else -1,
            api_key_index=int(api_key_index) if str(api_key_index).strip() else -1,
            private_key=api_key_private_key,
            chain_id=int(chain_id) if str(chain_id).strip() else chain_id_for(base_url),
        )
        self._max_slippage = Decimal(max_slippage)
        self._max_parallel = max(1, int(max_parallel))
        self._markets_ttl = float(markets_ttl_seconds)
        self._markets_lock = threading.Lock()
        self._markets: dict[str, _LighterMarket] = {}
        self._markets_loaded_at: float | None = None
        # One transaction at a time per process: each takes the key's next nonce.
        self._tx_lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._auth: tuple[str, float] | None = None
        self._ws_url = ws_url.strip() or stream_url_for(base_url)
        self._stream_timings = StreamTimings(
            backoff_seconds=float(stream_backoff_seconds),
            max_backoff_seconds=float(stream_max_backoff_seconds),
            refresh_seconds=float(stream_refresh_seconds),
        )
        self._closed = threading.Event()

    # --- market data ------------------------------------------------------------------

    def health_check(self) -> None:
        """``GET orderBooks``, one attempt: public, and answers as long as the API does."""
        self._client.order_books(retry=False)

    def markets(self) -> list[Market]:
        """The active perp markets from ``orderBookDetails``.

        Tick and size step are 10^-price_decimals and 10^-size_decimals. Max leverage is
        1 / ``min_initial_margin_fraction`` (in 1e4 ticks). Min collateral is the smallest
        order's notional, max(``min_quote_amount``, ``min_base_amount`` x last trade price),
        which is enough at any leverage of 1 or more.
        """
        return [entry.market for entry in self._load_markets().values()]

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        """Best bid and ask from ``orderBookOrders`` (limit 1), one call per market: Lighter
        has no multi-market book endpoint. At most ``max_parallel`` calls run at once. Markets
        with an empty side are left out, like unknown symbols; a failed read fails the call.

        Mind Lighter's limit of 60 requests a minute for standard accounts: a live feed belongs
        on the WebSocket ``order_book/{market}`` channels, this is for snapshots.
        """
        table = self._market_table()
        wanted = [table[symbol] for symbol in dict.fromkeys(s.upper() for s in symbols) if symbol in table]
        if not wanted:
            return {}
        with ThreadPoolExecutor(max_workers=min(self._max_parallel, len(wanted))) as pool:
            quotes = list(pool.map(self._quote, wanted))
        return {quote.symbol: quote for quote in quotes if quote is not None}

    def stream_prices(
        self,
        *,
        symbols: list[str],
        on_quote: Callable[[Quote], None],
        stop: threading.Event,
        on_live: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        """Best bid and ask of the ``order_book/{market}`` channels, one WebSocket for every
        symbol (see ``stream``). The market ids come from the market table, read again at
        every connection. Returns once ``stop`` is set or the venue is closed."""
        LighterPriceStream(
            url=self._ws_url,
            markets=self._market_ids,
            symbols=symbols,
            on_quote=on_quote,
            on_live=on_live,
            stop=stop,
            closed=self._closed,
            timings=self._stream_timings,
        ).run()

    # --- account ----------------------------------------------------------------------

    def account_ref(self, *, user_id: str, wallet_addresses: Iterable[str]) -> str:
        """Every user trades from the configured account, which an empty ``account_ref`` names."""
        return ""

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        """Non-zero positions of the account (``GET account?by=index``, public).

        Leverage is 100 / the position's ``initial_margin_fraction`` (a percentage).
        Collateral is the isolated margin, or for a cross position the initial margin it
        ties up (position value / leverage).
        """
        account = self._client.account(account_index=self._account_of(account_ref, trading=False))
        positions = account.get("positions") or []
        return [position for raw in positions if (position := self._position(raw)) is not None]

    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        """Search the active orders, then the latest 100 inactive ones (both need an auth token
        signed with the API key). None while Lighter has not executed the CreateOrder yet."""
        account_index = self._account_of(account_ref, trading=True)
        wanted = client_order_index(client_order_id)
        auth = self._auth_token()
        for orders in (
            self._client.active_orders(account_index=account_index, auth=auth),
            self._client.inactive_orders(account_index=account_index, auth=auth),
        ):
            for order in orders:
                if isinstance(order, dict) and order.get("client_order_index") == wanted:
                    return _venue_order(order, client_order_id)
        return None

    # --- orders -----------------------------------------------------------------------

    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        """A CreateOrder sized as collateral x leverage / price.

        Limit orders rest good-till-time (28 days) at ``price`` rounded to the tick in the
        trader's favour. Market orders are IOC with a worst price ``max_slippage`` beyond the
        best ask (long) or bid (short); they are sized at that best price. The size is
        rounded down to the size step and must reach the market's minimums.

        The same ``client_order_id`` always maps to the same client order index; after an
        error whose outcome is unknown, ``get_order`` says whether the order exists.
        """
        signer.ensure_available()
        self._account_of(order.account_ref, trading=True)
        if order.stop_loss is not None or order.take_profit is not None:
            raise ProviderError(
                self.name, "stop loss and take profit are not supported on Lighter yet", status_code=400
            )
        market = self._market(order.symbol)
        if not Decimal(0) < order.leverage <= market.market.max_leverage:
            raise ProviderError(
                self.name,
                f"leverage {order.leverage} is outside 0 .. {market.market.max_leverage} for {order.symbol}",
                status_code=400,
            )
        if order.collateral <= 0:
            raise ProviderError(self.name, "collateral must be positive", status_code=400)
        is_ask = order.side == Side.SHORT
        if order.type == OrderType.LIMIT:
            if order.price is None or order.price <= 0:
                raise ProviderError(self.name, "a limit order needs a positive price", status_code=400)
            reference = order.price
            price = _scaled(order.price, market.price_decimals, ROUND_UP if is_ask else ROUND_DOWN)
            order_type, time_in_force = signer.ORDER_TYPE_LIMIT, signer.TIME_IN_FORCE_GOOD_TILL_TIME
            expiry = signer.DEFAULT_28_DAY_ORDER_EXPIRY
        else:
            reference = self._best_price(market, is_ask=is_ask)
            price = self._worst_price(market, reference, is_ask=is_ask)
            order_type, time_in_force = signer.ORDER_TYPE_MARKET, signer.TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
            expiry = signer.IOC_ORDER_EXPIRY
        size = order.collateral * order.leverage / reference
        base_amount = _scaled(size, market.size_decimals, ROUND_DOWN)
        self._check_minimums(market, base_amount, reference)
        index = client_order_index(order.client_order_id)
        self._send(
            lambda nonce: signer.sign_create_order(
                key=self._signing_key(),
                nonce=nonce,
                market_index=market.market_id,
                client_order_index=index,
                base_amount=base_amount,
                price=price,
                is_ask=is_ask,
                order_type=order_type,
                time_in_force=time_in_force,
                order_expiry=expiry,
            )
        )
        return VenueOrder(
            venue_order_id=f"{market.market_id}:{index}",
            client_order_id=order.client_order_id,
            status=VenueOrderStatus.PENDING,
        )

    def cancel_order(self, *, account_ref: str, venue_order_id: str) -> VenueOrder:
        """A CancelOrder for ``"<market id>:<order index>"``; "pending" until Lighter executes it
        (an order that filled in between stays filled: ``get_order`` tells)."""
        signer.ensure_available()
        self._account_of(account_ref, trading=True)
        market_id, order_index = _parse_venue_order_id(venue_order_id)
        self._send(
            lambda nonce: signer.sign_cancel_order(
                key=self._signing_key(), nonce=nonce, market_index=market_id, order_index=order_index
            )
        )
        return VenueOrder(venue_order_id=venue_order_id, client_order_id="", status=VenueOrderStatus.PENDING)

    def close_position(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        size: Decimal | None = None,
        client_order_id: str = "",
    ) -> VenueOrder:
        """A reduce-only IOC market order against the position (all of it, or ``size``), with a
        worst price ``max_slippage`` beyond the best price. Its client order id is
        ours when given, else ``close-<uuid>``, returned so that ``get_order`` can follow it."""
        signer.ensure_available()
        account_index = self._account_of(account_ref, trading=True)
        positions = {p.venue_position_id: p for p in self.positions(account_ref=str(account_index))}
        position = positions.get(venue_position_id)
        if position is None:
            raise ProviderError(self.name, f"no open position {venue_position_id!r}", status_code=404)
        if size is not None and not Decimal(0) < size <= position.size:
            raise ProviderError(
                self.name, f"size {size} is outside 0 .. {position.size} of the position", status_code=400
            )
        market = self._market(position.symbol)
        is_ask = position.side == Side.LONG
        base_amount = _scaled(size or position.size, market.size_decimals, ROUND_DOWN)
        if base_amount <= 0:
            raise ProviderError(self.name, "the size to close is below the size step", status_code=400)
        price = self._worst_price(market, self._best_price(market, is_ask=is_ask), is_ask=is_ask)
        client_order_id = client_order_id or f"close-{uuid.uuid4()}"
        index = client_order_index(client_order_id)
        self._send(
            lambda nonce: signer.sign_create_order(
                key=self._signing_key(),
                nonce=nonce,
                market_index=market.market_id,
                client_order_index=index,
                base_amount=base_amount,
                price=price,
                is_ask=is_ask,
                order_type=signer.ORDER_TYPE_MARKET,
                time_in_force=signer.TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
                reduce_only=True,
                order_expiry=signer.IOC_ORDER_EXPIRY,
            )
        )
        return VenueOrder(
            venue_order_id=f"{market.market_id}:{index}",
            client_order_id=client_order_id,
            status=VenueOrderStatus.PENDING,
        )

    def close(self) -> None:
        self._closed.set()
        self._client.close()

    # --- internals --------------------------------------------------------------------

    def _send(self, sign: Callable[[int], signer.SignedTx]) -> dict[str, Any]:
        """Take the key's next nonce, sign with it and send, one transaction at a time here.

        Other processes may use the same key: a nonce taken twice ends in a retryable
        "invalid nonce" refusal, and the retry signs with a new one.
        """
        with self._tx_lock:
            nonce = self._client.next_nonce(
                account_index=self._key.account_index, api_key_index=self._key.api_key_index
            )
            signed = sign(nonce)
            return self._client.send_tx(tx_type=signed.tx_type, tx_info=signed.tx_info)

    def _account_of(self, account_ref: str, *, trading: bool) -> int:
        """The account index ``account_ref`` names; trading needs the configured account."""
        ref = (account_ref or "").strip()
        if not ref:
            if self._account_index is None:
                raise ProviderError(self.name, "no account given and none configured", status_code=400)
            return self._account_index
        try:
            account_index = int(ref)
        except ValueError:
            raise ProviderError(self.name, f"not a Lighter account index: {ref!r}", status_code=400) from None
        if trading and account_index != self._account_index:
            raise ProviderError(
                self.name,
                f"account {account_index} is not the configured Lighter account; only that one's API "
                "key is held here",
                status_code=400,
            )
        return account_index

    def _signing_key(self) -> signer.ApiKey:
        if self._account_index is None or self._key.api_key_index < 0 or not self._key.private_key:
            raise ProviderError(self.name, "no Lighter API key is configured")
        return self._key

    def _auth_token(self) -> str:
        with self._auth_lock:
            now = time.time()
            if self._auth is not None and self._auth[1] - _AUTH_TOKEN_MARGIN > now:
                return self._auth[0]
            deadline = int(now) + AUTH_TOKEN_SECONDS
            token = signer.create_auth_token(key=self._signing_key(), deadline=deadline)
            self._auth = (token, float(deadline))
            return token

    def _market_table(self) -> dict[str, _LighterMarket]:
        with self._markets_lock:
            fresh = (
                self._markets_loaded_at is not None
                and time.monotonic() - self._markets_loaded_at < self._markets_ttl
            )
            if fresh:
                return self._markets
        return self._load_markets()

    def _market_ids(self) -> dict[str, int]:
        return {symbol: entry.market_id for symbol, entry in self._market_table().items()}

    def _load_markets(self) -> dict[str, _LighterMarket]:
        table: dict[str, _LighterMarket] = {}
        for detail in self._client.order_book_details():
            try:
                entry = _market(detail) if isinstance(detail, dict) else None
            except (KeyError, TypeError, ValueError) as exc:
                raise ProviderError(
                    self.name, f"an orderBookDetails entry is malformed ({exc!r})", response=detail
                ) from exc
            if entry is not None:
                table[entry.market.symbol] = entry
        with self._markets_lock:
            self._markets, self._markets_loaded_at = table, time.monotonic()
        return table

    def _market(self, symbol: str) -> _LighterMarket:
        market = self._market_table().get(symbol.upper())
        if market is None:
            raise ProviderError(self.name, f"Lighter lists no active market {symbol!r}", status_code=404)
        return market

    def _quote(self, market: _LighterMarket) -> Quote | None:
        book = self._client.order_book_orders(market_id=market.market_id, limit=1)
        asks = [_decimal(level.get("price"), "ask price") for level in _levels(book, "asks")]
        bids = [_decimal(level.get("price"), "bid price") for level in _levels(book, "bids")]
        if not asks or not bids:
            return None
        return Quote(symbol=market.market.symbol, bid=max(bids), ask=min(asks), ts=timezone.now())

    def _best_price(self, market: _LighterMarket, *, is_ask: bool) -> Decimal:
        """The best bid for a sell, the best ask for a buy."""
        quote = self._quote(market)
        if quote is None:
            raise ProviderError(
                self.name, f"the {market.market.symbol} book has no liquidity on one side", retryable=True
            )
        return quote.bid if is_ask else quote.ask

    def _worst_price(self, market: _LighterMarket, best: Decimal, *, is_ask: bool) -> int:
        if is_ask:
            return max(1, _scaled(best * (1 - self._max_slippage), market.price_decimals, ROUND_DOWN))
        return _scaled(best * (1 + self._max_slippage), market.price_decimals, ROUND_UP)

    def _check_minimums(self, market: _LighterMarket, base_amount: int, price: Decimal) -> None:
        size = Decimal(base_amount).scaleb(-market.size_decimals)
        if size <= 0 or size < market.min_base_amount or size * price < market.min_quote_amount:
            raise ProviderError(
                self.name,
                f"order size {size} (about {(size * price).quantize(USDC_STEP)} USD) is below the "
                f"{market.market.symbol} minimum of {market.min_base_amount} "
                f"or {market.min_quote_amount} USD",
                status_code=400,
            )

    def _position(self, raw: Any) -> VenuePosition | None:
        if not isinstance(raw, dict):
            return None
        size = _decimal(raw.get("position"), "position")
        if size == 0:
            return None
        margin_fraction = _decimal(raw.get("initial_margin_fraction") or "0", "initial_margin_fraction")
        leverage = (
            (_HUNDRED / margin_fraction).quantize(Decimal("0.01")) if margin_fraction > 0 else Decimal(1)
        )
        value = _decimal(raw.get("position_value") or "0", "position_value")
        allocated = _decimal(raw.get("allocated_margin") or "0", "allocated_margin")
        isolated = raw.get("margin_mode") == 1
        collateral = allocated if isolated and allocated > 0 else (value / leverage).quantize(USDC_STEP)
        return VenuePosition(
            venue_position_id=str(raw.get("market_id")),
            symbol=f"{raw.get('symbol')}{QUOTE_ASSET}",
            side=Side.LONG if raw.get("sign") == 1 else Side.SHORT,
            size=abs(size),
            entry_price=_decimal(raw.get("avg_entry_price"), "avg_entry_price"),
            collateral=collateral,
            leverage=leverage,
            extra={
                "market_id": str(raw.get("market_id")),
                "margin_mode": "isolated" if isolated else "cross",
                "position_value": str(value),
                "unrealized_pnl": str(raw.get("unrealized_pnl", "")),
                "realized_pnl": str(raw.get("realized_pnl", "")),
                "liquidation_price": str(raw.get("liquidation_price", "")),
            },
        )


def _market(detail: dict[str, Any]) -> _LighterMarket | None:
    """An active perp market from an ``orderBookDetails`` entry; None for anything else."""
    if detail.get("status") != "active" or detail.get("market_type", "perp") != "perp":
        return None
    size_decimals = int(detail["size_decimals"])
    price_decimals = int(detail["price_decimals"])
    min_base = _decimal(detail.get("min_base_amount") or "0", "min_base_amount")
    min_quote = _decimal(detail.get("min_quote_amount") or "0", "min_quote_amount")
    last_price = _decimal(detail.get("last_trade_price") or "0", "last_trade_price")
    margin_fraction = _decimal(
        detail.get("min_initial_margin_fraction") or "0", "min_initial_margin_fraction"
    )
    max_leverage = (
        (MARGIN_FRACTION_TICK / margin_fraction).quantize(Decimal("0.01"), ROUND_DOWN)
        if margin_fraction > 0
        else Decimal(1)
    )
    min_collateral = max(min_quote, min_base * last_price).quantize(Decimal("0.01"), ROUND_UP)
    market_id = int(detail["market_id"])
    return _LighterMarket(
        market=Market(
            symbol=f"{str(detail['symbol']).upper()}{QUOTE_ASSET}",
            venue_symbol=str(market_id),
            category=MarketCategory.CRYPTO,
            tick_size=Decimal(1).scaleb(-price_decimals),
            size_step=Decimal(1).scaleb(-size_decimals),
            min_collateral=min_collateral,
            max_leverage=max_leverage,
        ),
        market_id=market_id,
        size_decimals=size_decimals,
        price_decimals=price_decimals,
        min_base_amount=min_base,
        min_quote_amount=min_quote,
    )


def _venue_order(order: dict[str, Any], client_order_id: str) -> VenueOrder:
    filled = _decimal(order.get("filled_base_amount") or "0", "filled_base_amount")
    filled_quote = _decimal(order.get("filled_quote_amount") or "0", "filled_quote_amount")
    lighter_status = str(order.get("status", ""))
    status = _STATUSES.get(lighter_status)
    reject_reason = None
    if status is None:
        # A cancellation Lighter decided (margin, slippage, liquidity, self-trade, ...).
        status = "cancelled" if filled > 0 else "rejected"
        reject_reason = lighter_status or "unknown"
    elif status == "open" and filled > 0:
        status = "partially_filled"
    index = order.get("client_order_index") or order.get("order_index")
    return VenueOrder(
        venue_order_id=f"{order.get('market_index')}:{index}",
        client_order_id=client_order_id,
        status=VenueOrderStatus(status),
        filled_size=filled,
        avg_fill_price=filled_quote / filled if filled > 0 else None,
        reject_reason=reject_reason,
    )


def _levels(book: dict[str, Any], side: str) -> list[dict[str, Any]]:
    levels = book.get(side) or []
    if not isinstance(levels, list) or not all(isinstance(level, dict) for level in levels):
        raise ProviderError("lighter", f"the order book's {side} are not a list of orders", response=book)
    return levels


def _parse_venue_order_id(venue_order_id: str) -> tuple[int, int]:
    market, _, index = venue_order_id.partition(":")
    try:
        market_id, order_index = int(market), int(index)
    except ValueError:
        raise ProviderError(
            "lighter",
            f"not a Lighter order id (<market id>:<order index>): {venue_order_id!r}",
            status_code=400,
        ) from None
    return market_id, order_index


def _scaled(value: Decimal, decimals: int, rounding: str) -> int:
    """``value`` as Lighter's integer with ``decimals`` implied decimals."""
    return int(value.scaleb(decimals).to_integral_value(rounding=rounding))


def _decimal(value: Any, what: str) -> Decimal:
    """A Decimal from Lighter's strings, or from its JSON numbers through their shortest text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ProviderError("lighter", f"{what} is missing or not a number: {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ProviderError("lighter", f"{what} is not a number: {value!r}") from None
    if not result.is_finite():
        raise ProviderError("lighter", f"{what} is not a finite number: {value!r}")
    return result
