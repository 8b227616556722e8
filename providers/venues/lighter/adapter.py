"""Lighter (zkLighter order-book perps) behind our ``Venue`` interface.

Accounts. The configured ``account_index`` is the platform's master account, with the API
key in slot ``api_key_index``. With ``sub_accounts`` on, every user trades from a Lighter
sub-account of their own under it:

- ``ensure_account(user_id=...)`` creates it on first use (CreateSubAccount, tx 9, signed by
  the master's key; Lighter assigns the index, read back from ``accountsByL1Address``),
  stores the index (``providers.models.LighterSubAccount``) and registers the platform's API
  public key in the same slot of the sub-account (ChangePubKey, tx 8, which Lighter also wants
  signed by the master's L1 Ethereum key, ``l1_private_key``). Idempotent: trading calls it
  before a user's first order on Lighter and uses what it returns as ``account_ref``;
  ``account_ref()`` then answers from the stored index without calling Lighter;
- ``transfer_to_account(account_ref=..., amount=...)`` moves USDC from the master account to
  the sub-account (Transfer, tx 12, also L1-signed). The ledger posting that mirrors it is
  trading's;
- orders are signed for the sub-account with the same private key (registered there), so no
  per-user secret is held.

With ``sub_accounts`` off, everyone trades from the master account (``account_ref`` "").
Positions can be read for any account.

Identifiers:
- a market is Lighter's perp market id; our symbol is its base asset + "USD" ("ETH" -> "ETHUSD");
- our ``client_order_id`` (any string) becomes Lighter's 48-bit ``client_order_index`` through
  a hash (``client_order_index``), so an order is found again by the same id;
- ``venue_order_id`` is ``"<market id>:<client order index>"``: what a CancelOrder needs
  (Lighter cancels by the order index or by the client order index);
- ``venue_position_id`` is the market id: an account has one position per market.

Transactions are asynchronous on Lighter: ``sendTx`` answering 200 means the sequencer took
the transaction, not that it executed. ``place_order``, ``cancel_order`` and
``close_position`` therefore return status "pending". What became of an order arrives
through ``follow_orders`` (the account WebSocket channel ``account_all_orders``, with REST
polling while it is down), ``order_updates`` (one REST pass) or ``get_order``; all three
match Lighter's orders to ours by client order index.

Stop loss and take profit are native (``STOP_EXECUTION_MODE`` "native"): Lighter's own
reduce-only trigger orders (STOP_LOSS / TAKE_PROFIT, market orders sent when the mark price
crosses the trigger), placed with the order (``VenueOrderRequest.stop_loss`` /
``take_profit``) or later for a position (``place_stop``), and cancelled when the position
is closed here.

Prices stream too (``PriceStreaming``): ``stream_prices`` follows the ``order_book/{market}``
channels of Lighter's WebSocket (``stream``), which is how a live feed stays within Lighter's
REST limit of 60 requests a minute.

Not done here: the per-market leverage setting (an UpdateLeverage transaction): the order is
sized with the requested leverage, while Lighter margins it with the account's setting for
the market.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Any, Final

from django.db import IntegrityError, transaction
from django.utils import timezone

from providers.base import (
    Market,
    MarketCategory,
    NativeStops,
    OrderFollowing,
    OrderType,
    PriceStreaming,
    Quote,
    Side,
    Venue,
    VenueAccounts,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
)
from providers.errors import ProviderError
from providers.models import LighterSubAccount
from providers.venues.lighter import signer
from providers.venues.lighter.account_stream import LighterAccountOrders, account_stream_url
from providers.venues.lighter.client import DEFAULT_BASE_URL, LighterClient
from providers.venues.lighter.stream import LighterPriceStream, StreamTimings, stream_url_for

QUOTE_ASSET: Final = "USD"
MAX_CLIENT_ORDER_INDEX: Final = 2**48 - 1
MARGIN_FRACTION_TICK: Final = Decimal(10_000)  # margin fractions of orderBookDetails: 1e4 = 100 %
USDC_STEP: Final = Decimal("0.000001")
AUTH_TOKEN_SECONDS: Final = 10 * 60
_AUTH_TOKEN_MARGIN: Final = 60
_HUNDRED: Final = Decimal(100)
STOP_EXECUTION_MODE: Final = "native"
USDC_SCALE: Final = 6  # transfers carry USDC in 1e6 units
_TRIGGER_TYPES: Final = frozenset({"stop-loss", "stop-loss-limit", "take-profit", "take-profit-limit"})

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


def stop_client_order_id(client_order_id: str, kind: str) -> str:
    """The client order id of an order's attached stop: ``<order id>/sl`` or ``<order id>/tp``."""
    return f"{client_order_id}/{'sl' if kind == 'stop_loss' else 'tp'}"


def _check_trigger(kind: str, trigger: Decimal, *, side: Side, reference: Decimal) -> None:
    """A stop loss below the price for a long (above for a short), a take profit beyond it."""
    if kind not in {"stop_loss", "take_profit"}:
        raise ProviderError("lighter", f"not a stop kind: {kind!r}", status_code=400)
    below = (kind == "stop_loss") == (side == Side.LONG)
    if trigger <= 0 or (trigger >= reference if below else trigger <= reference):
        where = "below" if below else "above"
        raise ProviderError(
            "lighter",
            f"a {kind.replace('_', ' ')} of a {side} must be {where} {reference}, not {trigger}",
            status_code=400,
        )


def chain_id_for(base_url: str) -> int:
    """The chain id signatures carry, inferred from the host as Lighter's SDK does (mainnet 304)."""
    if "testnet.zklighter" in base_url or "api.rh-testnet.lighter" in base_url:
        return 300
    if "api.rh.lighter" in base_url:
        return 466324
    return 304


class LighterVenue(Venue, PriceStreaming, VenueAccounts, OrderFollowing, NativeStops):
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
        sub_accounts: bool | str = False,
        l1_address: str = "",
        l1_private_key: str = "",
        api_key_public_key: str = "",
        sub_account_wait_seconds: float | str = 10.0,
        order_poll_seconds: float | str = 2.0,
    ) -> None:
        """Options arrive as strings from the provider configuration.

        ``max_slippage`` bounds the worst price of market orders (0.01 = 1 % beyond the best
        price); ``max_parallel`` bounds the concurrent order-book reads of ``prices``;
        ``markets_ttl_seconds`` is how long the market table behind prices and orders is kept.
        ``ws_url`` is the WebSocket of ``stream_prices`` (derived from ``base_url`` when empty);
        the stream reconnects after ``stream_backoff_seconds`` doubling up to
        ``stream_max_backoff_seconds``, and restamps an unchanged quote every
        ``stream_refresh_seconds``.

        ``sub_accounts`` ("true") gives every user a sub-account of the master account;
        that needs the master's L1 address and Ethereum key (``l1_address``,
        ``l1_private_key``) and the public half of the API key (``api_key_public_key``), which
        is registered in every sub-account. ``sub_account_wait_seconds`` bounds the wait for
        Lighter to execute a CreateSubAccount; ``order_poll_seconds`` is the REST polling
        period of ``follow_orders`` while its stream is down.
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
        self._ws_url = ws_url.strip() or stream_url_for(base_url)
        self._stream_timings = StreamTimings(
            backoff_seconds=float(stream_backoff_seconds),
            max_backoff_seconds=float(stream_max_backoff_seconds),
            refresh_seconds=float(stream_refresh_seconds),
        )
        self._closed = threading.Event()
        self._sub_accounts = str(sub_accounts).strip().lower() in {"1", "true", "yes", "on"}
        self._l1_address = l1_address.strip()
        self._l1_private_key = l1_private_key
        self._api_public_key = api_key_public_key.strip()
        self._sub_account_wait = float(sub_account_wait_seconds)
        self._order_poll_seconds = float(order_poll_seconds)
        self._auths: dict[int, tuple[str, float]] = {}

    # --- market data ------------------------------------------------------------------

    def health_check(self) -> None:
        """``GET orderBooks``, one attempt: public, and answers as long as the API does."""
        self._client.order_books(retry=False)

    def markets(self) -> list[Market]:
        """The active perp markets from ``orderBookDetails``.

        Tick and size step are 10^-price_decimals and 10^-size_decimals. Max leverage is
        1 / ``min_initial_margin_fraction``, an integer in 1e4 ticks (10_000 / 400 = 25x).
        Min collateral is the smallest order's notional, max(``min_quote_amount``,
        ``min_base_amount`` x last trade price), which is enough at any leverage of 1 or more.
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
        """The user's sub-account index as stored by ``ensure_account`` (never calls Lighter);
        "" (the master account) when sub-accounts are off. A user without one yet is a 409:
        trading calls ``ensure_account`` first."""
        if not self._sub_accounts:
            return ""
        row = LighterSubAccount.objects.filter(user_ref=str(user_id), api_key_registered=True).first()
        if row is None:
            raise ProviderError(
                self.name,
                f"user {user_id} has no Lighter sub-account yet: ensure_account creates it",
                status_code=409,
            )
        return str(row.account_index)

    def ensure_account(self, *, user_id: str) -> str:
        """The ``account_ref`` of the user's sub-account, created on first use (see the
        module). Idempotent: an account created or a key registered by an earlier call that
        failed halfway is picked up where it stopped. "" when sub-accounts are off.

        Blocks up to ``sub_account_wait_seconds`` while Lighter executes the CreateSubAccount;
        a ``ProviderError`` (retryable when it is only late) leaves nothing half-stored.
        """
        if not self._sub_accounts:
            return ""
        user_ref = str(user_id)
        row = LighterSubAccount.objects.filter(user_ref=user_ref).first()
        if row is None:
            row = self._create_sub_account(user_ref)
        if not row.api_key_registered:
            self._register_api_key(row)
        return str(row.account_index)

    def transfer_to_account(self, *, account_ref: str, amount: Decimal) -> str:
        """Move ``amount`` USDC from the master account's perps balance to the sub-account
        ``account_ref`` (Transfer, tx 12, L1-signed). Returns Lighter's transaction hash; like
        every transaction it executes after the answer. The ledger entry is the caller's."""
        signer.ensure_available()
        target = self._account_of(account_ref, trading=True)
        if target == self._account_index:
            raise ProviderError(
                self.name, "a transfer goes to a sub-account, not the master", status_code=400
            )
        units = _scaled(amount, USDC_SCALE, ROUND_DOWN)
        if units <= 0:
            raise ProviderError(self.name, "a transfer needs a positive amount", status_code=400)
        answer = self._send(
            lambda nonce: signer.with_l1_signature(
                signer.sign_transfer(
                    key=self._signing_key(), nonce=nonce, to_account_index=target, usdc_amount=units
                ),
                l1_private_key=self._l1_private_key,
            )
        )
        return str(answer.get("tx_hash", ""))

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        """Non-zero positions of the account (``GET account?by=index``, public).

        Leverage is 100 / the position's ``initial_margin_fraction``: unlike the market's, a
        decimal string in percent ("20.00" = 5x; the SDK's AccountPosition declares it StrictStr
        and captured answers read "20.00", "33.33").
        Collateral is the isolated margin, or for a cross position the initial margin it
        ties up (position value / leverage).
        """
        account = self._client.account(account_index=self._account_of(account_ref, trading=False))
        positions = account.get("positions") or []
        return [position for raw in positions if (position := self._position(raw)) is not None]

    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        """Search the active orders, then the latest 100 inactive ones (both need an auth token
        signed with the API key). None while Lighter has not executed the CreateOrder yet."""
        found = self.order_updates(account_ref=account_ref, client_order_ids=[client_order_id])
        return found[0] if found else None

    def order_updates(self, *, account_ref: str, client_order_ids: Iterable[str]) -> list[VenueOrder]:
        """Where each of ``client_order_ids`` stands, from one read of the active and the
        latest 100 inactive orders (REST, auth). Ids Lighter has not executed yet are left
        out. This is the polling side of ``follow_orders``, callable on its own."""
        account_index = self._account_of(account_ref, trading=True)
        ids = {client_order_index(cid): cid for cid in client_order_ids}
        found: dict[str, VenueOrder] = {}
        for raw in self._poll_orders(account_index):
            cid = ids.get(raw.get("client_order_index"))  # type: ignore[arg-type]
            if cid is not None and cid not in found:
                found[cid] = _venue_order(raw, cid)
        return [found[cid] for cid in ids.values() if cid in found]

    def follow_orders(
        self,
        *,
        account_ref: str,
        client_order_ids: Callable[[], Iterable[str]],
        on_order: Callable[[VenueOrder], None],
        stop: threading.Event,
        on_live: Callable[[bool], None] | None = None,
    ) -> None:
        """Push every change of the orders ``client_order_ids()`` names (read again at each
        batch: the orders trading waits for) to ``on_order`` until ``stop`` is set or the venue
        is closed. Blocks: run it in a thread of its own.

        The account channel ``account_all_orders/{account}`` carries the changes; while it is
        down, the REST order lists are polled every ``order_poll_seconds``. An order goes out
        when its status or filled size changes, so a fill seen both ways goes out once.
        ``on_live`` is told whether the stream (True) or polling (False) is the source.
        """
        account_index = self._account_of(account_ref, trading=True)
        last: dict[str, tuple[str, Decimal]] = {}

        def take(orders: list[dict[str, Any]]) -> None:
            ids = {client_order_index(cid): cid for cid in client_order_ids()}
            for raw in orders:
                cid = ids.get(raw.get("client_order_index"))  # type: ignore[arg-type]
                if cid is None:
                    continue
                venue_order = _venue_order(raw, cid)
                state = (str(venue_order.status), venue_order.filled_size)
                if last.get(cid) != state:
                    last[cid] = state
                    on_order(venue_order)

        LighterAccountOrders(
            url=account_stream_url(self._ws_url),
            account_index=account_index,
            auth=lambda: self._auth_token(account_index),
            poll=lambda: self._poll_orders(account_index),
            on_orders=take,
            on_live=on_live,
            stop=stop,
            closed=self._closed,
            timings=self._stream_timings,
            poll_seconds=self._order_poll_seconds,
        ).run()

    def place_stop(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        kind: str,
        trigger_price: Decimal,
        client_order_id: str,
        size: Decimal | None = None,
    ) -> VenueOrder:
        """A native stop of an open position: ``kind`` "stop_loss" or "take_profit", a
        reduce-only trigger order of all of the position (or ``size``) at ``trigger_price``.
        Its execution mode is ``STOP_EXECUTION_MODE`` ("native"); "pending" like any order."""
        signer.ensure_available()
        account_index = self._account_of(account_ref, trading=True)
        positions = {p.venue_position_id: p for p in self.positions(account_ref=str(account_index))}
        position = positions.get(venue_position_id)
        if position is None:
            raise ProviderError(self.name, f"no open position {venue_position_id!r}", status_code=404)
        market = self._market(position.symbol)
        base_amount = _scaled(size or position.size, market.size_decimals, ROUND_DOWN)
        return self._place_trigger(
            account_index=account_index,
            market=market,
            side=position.side,
            kind=kind,
            trigger_price=trigger_price,
            reference=position.entry_price,
            base_amount=base_amount,
            client_order_id=client_order_id,
        )

    def venue_client_order_id(self, client_order_id: str) -> str:
        """Lighter keeps a number, not our id: ``client_order_index`` of it, as text."""
        return str(client_order_index(client_order_id))

    def open_orders(self, *, account_ref: str) -> list[VenueOrder]:
        """The account's resting orders (``GET accountActiveOrders``, with an auth token).

        ``client_order_id`` is Lighter's ``client_order_index`` as text (a hash of ours, see
        ``client_order_index``); ``venue_order_id`` is the one ``get_order`` gives the same order.
        """
        account_index = self._account_of(account_ref, trading=True)
        orders = self._client.active_orders(account_index=account_index, auth=self._auth_token(account_index))
        return [
            _venue_order(order, str(order.get("client_order_index") or ""))
            for order in orders
            if isinstance(order, dict)
        ]

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
        account_index = self._account_of(order.account_ref, trading=True)
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
        for kind, trigger in (("stop_loss", order.stop_loss), ("take_profit", order.take_profit)):
            if trigger is not None:
                _check_trigger(kind, trigger, side=order.side, reference=reference)
        index = client_order_index(order.client_order_id)
        self._send(
            lambda nonce: signer.sign_create_order(
                key=self._signing_key(account_index),
                nonce=nonce,
                market_index=market.market_id,
                client_order_index=index,
                base_amount=base_amount,
                price=price,
                is_ask=is_ask,
                order_type=order_type,
                time_in_force=time_in_force,
                order_expiry=expiry,
            ),
            account_index=account_index,
        )
        for kind, trigger in (("stop_loss", order.stop_loss), ("take_profit", order.take_profit)):
            if trigger is not None:
                self._place_trigger(
                    account_index=account_index,
                    market=market,
                    side=order.side,
                    kind=kind,
                    trigger_price=trigger,
                    reference=reference,
                    base_amount=base_amount,
                    client_order_id=stop_client_order_id(order.client_order_id, kind),
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
        account_index = self._account_of(account_ref, trading=True)
        market_id, order_index = _parse_venue_order_id(venue_order_id)
        self._send(
            lambda nonce: signer.sign_cancel_order(
                key=self._signing_key(account_index),
                nonce=nonce,
                market_index=market_id,
                order_index=order_index,
            ),
            account_index=account_index,
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
                key=self._signing_key(account_index),
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
            ),
            account_index=account_index,
        )
        if size is None:
            self._cancel_triggers(account_index, market.market_id)
        return VenueOrder(
            venue_order_id=f"{market.market_id}:{index}",
            client_order_id=client_order_id,
            status=VenueOrderStatus.PENDING,
        )

    def close(self) -> None:
        self._closed.set()
        self._client.close()

    # --- internals --------------------------------------------------------------------

    def _send(
        self, sign: Callable[[int], signer.SignedTx], *, account_index: int | None = None
    ) -> dict[str, Any]:
        """Take the key's next nonce in ``account_index`` (the master's by default), sign with
        it and send, one transaction at a time here.

        Other processes may use the same key: a nonce taken twice ends in a retryable
        "invalid nonce" refusal, and the retry signs with a new one.
        """
        with self._tx_lock:
            nonce = self._client.next_nonce(
                account_index=self._key.account_index if account_index is None else account_index,
                api_key_index=self._key.api_key_index,
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
        if trading and account_index != self._account_index and not self._is_sub_account(account_index):
            raise ProviderError(
                self.name,
                f"account {account_index} is not the configured Lighter account nor one of its "
                "sub-accounts; only their API key is held here",
                status_code=400,
            )
        return account_index

    def _is_sub_account(self, account_index: int) -> bool:
        return (
            self._sub_accounts
            and LighterSubAccount.objects.filter(
                account_index=account_index, api_key_registered=True
            ).exists()
        )

    def _signing_key(self, account_index: int | None = None) -> signer.ApiKey:
        """The API key, for the master account or (registered there) a sub-account."""
        if self._account_index is None or self._key.api_key_index < 0 or not self._key.private_key:
            raise ProviderError(self.name, "no Lighter API key is configured")
        if account_index is None or account_index == self._account_index:
            return self._key
        return replace(self._key, account_index=account_index)

    def _auth_token(self, account_index: int | None = None) -> str:
        account = self._account_index if account_index is None else account_index
        with self._auth_lock:
            now = time.time()
            cached = self._auths.get(account) if account is not None else None
            if cached is not None and cached[1] - _AUTH_TOKEN_MARGIN > now:
                return cached[0]
            deadline = int(now) + AUTH_TOKEN_SECONDS
            token = signer.create_auth_token(key=self._signing_key(account), deadline=deadline)
            if account is not None:
                self._auths[account] = (token, float(deadline))
            return token

    def _poll_orders(self, account_index: int) -> list[dict[str, Any]]:
        """The account's active orders, then its latest inactive ones (REST, auth)."""
        auth = self._auth_token(account_index)
        orders = [
            *self._client.active_orders(account_index=account_index, auth=auth),
            *self._client.inactive_orders(account_index=account_index, auth=auth),
        ]
        return [order for order in orders if isinstance(order, dict)]

    def _place_trigger(
        self,
        *,
        account_index: int,
        market: _LighterMarket,
        side: Side,
        kind: str,
        trigger_price: Decimal,
        reference: Decimal,
        base_amount: int,
        client_order_id: str,
    ) -> VenueOrder:
        """A reduce-only STOP_LOSS / TAKE_PROFIT trigger order closing a ``side`` position.

        Lighter's rules (lighter-go create_order.go): TIF IOC, a trigger price and an expiry
        (28 days). The order's price is the worst accepted once triggered: ``max_slippage``
        beyond the trigger."""
        _check_trigger(kind, trigger_price, side=side, reference=reference)
        if base_amount <= 0:
            raise ProviderError(self.name, "the stop's size is below the size step", status_code=400)
        is_ask = side == Side.LONG
        order_type = signer.ORDER_TYPE_STOP_LOSS if kind == "stop_loss" else signer.ORDER_TYPE_TAKE_PROFIT
        trigger = _scaled(trigger_price, market.price_decimals, ROUND_DOWN if is_ask else ROUND_UP)
        price = self._worst_price(market, trigger_price, is_ask=is_ask)
        index = client_order_index(client_order_id)
        self._send(
            lambda nonce: signer.sign_create_order(
                key=self._signing_key(account_index),
                nonce=nonce,
                market_index=market.market_id,
                client_order_index=index,
                base_amount=base_amount,
                price=price,
                is_ask=is_ask,
                order_type=order_type,
                time_in_force=signer.TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
                reduce_only=True,
                trigger_price=trigger,
                order_expiry=signer.DEFAULT_28_DAY_ORDER_EXPIRY,
            ),
            account_index=account_index,
        )
        return VenueOrder(
            venue_order_id=f"{market.market_id}:{index}",
            client_order_id=client_order_id,
            status=VenueOrderStatus.PENDING,
        )

    def _cancel_triggers(self, account_index: int, market_id: int) -> None:
        """Cancel the resting trigger orders of a market: the stops of a position being closed."""
        auth = self._auth_token(account_index)
        for raw in self._client.active_orders(account_index=account_index, auth=auth, market_id=market_id):
            if not isinstance(raw, dict) or raw.get("type") not in _TRIGGER_TYPES:
                continue
            order_index = int(raw.get("order_index") or raw.get("client_order_index") or 0)
            self._send(
                self._cancel_signer(account_index, market_id, order_index), account_index=account_index
            )

    def _cancel_signer(
        self, account_index: int, market_id: int, order_index: int
    ) -> Callable[[int], signer.SignedTx]:
        def sign(nonce: int) -> signer.SignedTx:
            return signer.sign_cancel_order(
                key=self._signing_key(account_index),
                nonce=nonce,
                market_index=market_id,
                order_index=order_index,
            )

        return sign

    def _create_sub_account(self, user_ref: str) -> LighterSubAccount:
        """Send a CreateSubAccount and claim the index Lighter gives it (see ``ensure_account``).

        Another process creating one at the same moment may see ours too: each claims the
        lowest new index nobody stored, the unique index deciding, so each gets one."""
        signer.ensure_available()
        if not self._l1_address:
            raise ProviderError(self.name, "sub-accounts need the master's l1_address configured")
        before = self._sub_account_indexes()
        self._send(lambda nonce: signer.sign_create_sub_account(key=self._signing_key(), nonce=nonce))
        deadline = time.monotonic() + self._sub_account_wait
        while True:
            stored = set(LighterSubAccount.objects.values_list("account_index", flat=True))
            for candidate in sorted(self._sub_account_indexes() - before - stored):
                try:
                    with transaction.atomic():
                        return LighterSubAccount.objects.create(user_ref=user_ref, account_index=candidate)
                except IntegrityError:
                    existing = LighterSubAccount.objects.filter(user_ref=user_ref).first()
                    if existing is not None:
                        return existing
            if time.monotonic() >= deadline:
                raise ProviderError(
                    self.name,
                    f"Lighter has not shown the new sub-account within {self._sub_account_wait} s",
                    retryable=True,
                )
            time.sleep(min(0.5, max(0.01, self._sub_account_wait / 20)))

    def _sub_account_indexes(self) -> set[int]:
        accounts = self._client.sub_accounts(l1_address=self._l1_address)
        indexes = {int(a["index"]) for a in accounts if isinstance(a, dict) and a.get("index") is not None}
        return indexes - ({self._account_index} if self._account_index is not None else set())

    def _register_api_key(self, row: LighterSubAccount) -> None:
        """Register the platform's API public key in the sub-account's key slot (ChangePubKey,
        signed with that key for the sub-account, and L1-signed by the master's Ethereum key)."""
        if not self._api_public_key:
            raise ProviderError(self.name, "sub-accounts need api_key_public_key configured")
        account_index = row.account_index
        self._send(
            lambda nonce: signer.with_l1_signature(
                signer.sign_change_pub_key(
                    key=self._signing_key(account_index), nonce=nonce, public_key=self._api_public_key
                ),
                l1_private_key=self._l1_private_key,
            ),
            account_index=account_index,
        )
        self._wait_for(
            lambda: self._key_registered(account_index), f"the API key of sub-account {account_index}"
        )
        row.api_key_registered = True
        row.save(update_fields=["api_key_registered", "updated_at"])

    def _key_registered(self, account_index: int) -> bool:
        keys = self._client.api_keys(account_index=account_index, api_key_index=self._key.api_key_index)
        wanted = self._api_public_key.lower().removeprefix("0x")
        return any(str(k.get("public_key", "")).lower().removeprefix("0x") == wanted for k in keys)

    def _wait_for(self, done: Callable[[], bool], what: str) -> None:
        """Until ``done()``, for at most ``sub_account_wait_seconds`` (Lighter executes later)."""
        deadline = time.monotonic() + self._sub_account_wait
        while not done():
            if time.monotonic() >= deadline:
                raise ProviderError(
                    self.name,
                    f"Lighter has not executed {what} within {self._sub_account_wait} s",
                    retryable=True,
                )
            time.sleep(min(0.5, max(0.01, self._sub_account_wait / 20)))

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
    # An integer of 1e4 ticks (lighter-go MarginFractionTick; the SDK's PerpsOrderBookDetail
    # declares it StrictInt): 400 = 4 % = 25x. A fraction ("0.04") or a percentage ("4.00")
    # here would be another unit, and reading it as ticks would give absurd leverage.
    raw_fraction = detail.get("min_initial_margin_fraction") or 0
    if isinstance(raw_fraction, bool) or not isinstance(raw_fraction, int) or not 0 <= raw_fraction <= 10_000:
        raise ValueError(f"min_initial_margin_fraction {raw_fraction!r} is not an integer of 1e4 ticks")
    margin_fraction = Decimal(raw_fraction)
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
