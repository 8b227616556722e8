"""Ostium (perpetuals on forex, indices, commodities and crypto, settled in USDC on Arbitrum)
behind our ``Venue`` interface.

Reads (markets, prices, positions, resting orders) come from Ostium's subgraph and price
service. Writes are transactions of the trader's own wallet, so this adapter does not send
them: it builds them.

Why ``place_order`` raises
--------------------------
An Ostium trade is an ``openTrade`` call whose sender is the trader (or the trader's
delegate). ``Venue.place_order`` receives no wallet, and one adapter, built by the registry
from plain string options, serves every user: holding a signer here would mean one platform
key for everyone, which DESIGN.md rules out. So ``place_order``, ``cancel_order`` and
``close_position`` raise a non-retryable ``ProviderError``, and the trading layer composes a
builder with the user's wallet provider::

    pair_index = int(market.venue_symbol)           # market from venue.markets()
    transaction = venue.build_order(order=request, pair_index=pair_index, market_price=quote.mid)
    sent = wallets.sign_and_send_transaction(provider_wallet_id=wallet_id, transaction=transaction)

Before the first trade the trader's wallet approves USDC to Ostium's TradingStorage
(``usdc_allowance`` tells whether ``build_usdc_approval`` is needed; the SDK approves
1,000,000 USDC once). A market order is settled later by Ostium's keeper: follow it with
``order_for_transaction(tx_hash)`` and ``positions``.

Delegation
----------
Every trade builder takes ``via_delegate``. False: the trader's wallet sends the transaction.
True: the call is wrapped in ``delegatedAction(trader, call)`` for the trader's delegate to
send, after the trader has sent ``build_set_delegate(delegate=...)`` once; the contract then
acts as the trader (``_msgSender()``). USDC approval is a call to the USDC contract and can
never be delegated.

Units: collateral in USDC (6 decimals), prices in 18-decimal fixed point, leverage and
percentages x100. Builders refuse a value that would need rounding (``ValueError``): callers
quantise with the pair's tick size first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, InvalidOperation, localcontext
from typing import Any, Final

from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address

from providers.base import (
    EvmTransaction,
    Market,
    MarketCategory,
    NativeClose,
    OrderType,
    Quote,
    Side,
    TokenSpec,
    Venue,
    VenueOrder,
    VenueOrderRequest,
    VenueOrderStatus,
    VenuePosition,
    WalletTrade,
    WalletTradedVenue,
)
from providers.errors import ProviderError
from providers.venues.ostium.abi import (
    ERC20,
    ERROR_BY_SELECTOR,
    OPEN_TRADE_SELECTORS,
    TRADING,
    TRADING_BY_ABI_VERSION,
    OpenOrderType,
)
from providers.venues.ostium.client import PROVIDER, OstiumClient

logger = logging.getLogger(__name__)

# keccak256("eip1967.proxy.implementation") - 1: where a proxy keeps its implementation's address.
EIP1967_IMPLEMENTATION_SLOT: Final = 0x360894A13BA1A3210667C828492DB98DCA3E2076CC3735A920A3CA505D382BBC
USDC_DECIMALS: Final = 6
PRICE_DECIMALS: Final = 18
# Leverage, slippage and close percentages travel x100 (10x = 1000, 2 % = 200, 100 % = 10000).
HUNDREDTHS: Final = 2
# Builder fees are percent x 1e6 (0.1 % = 100000).
BUILDER_FEE_DECIMALS: Final = 6
MAX_BUILDER_FEE_PERCENT: Final = Decimal("0.5")
# The SDK's default; the contract refuses 100 % or more.
DEFAULT_SLIPPAGE_PERCENT: Final = Decimal(2)
MAX_SLIPPAGE_PERCENT: Final = Decimal(100)
# No tick exists on chain (prices are 18-decimal); the SDK sends every price rounded to
# 5 decimals, so that is the finest price Ostium's own tools produce.
TICK_SIZE: Final = Decimal("0.00001")
# Positions are sized by collateral x leverage; collateral moves in USDC base units.
SIZE_STEP: Final = Decimal("0.000001")
ZERO_ADDRESS: Final = "0x0000000000000000000000000000000000000000"
# What the SDK approves TradingStorage for once, so that later trades need no approval.
APPROVAL_AMOUNT: Final = Decimal(1_000_000)

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_SELECTOR = re.compile(r"0x([0-9a-fA-F]{8})")

# Subgraph group names are matched by the words they contain (the exact names are not
# documented). Groups matching none (stocks, ETFs) have no category of ours and are not listed.
_CATEGORY_WORDS: Final = (
    (("crypto",), MarketCategory.CRYPTO),
    (("forex", "fx", "currenc"), MarketCategory.FOREX),
    (("indic", "index"), MarketCategory.INDICES),
    (("commodit", "metal", "energy", "agri"), MarketCategory.COMMODITIES),
)
_UNLISTED_GROUP_WORDS: Final = ("stock", "equit", "etf")

_PAIRS_QUERY: Final = """
query pairs {
  pairs(first: 1000) {
    id from to maxLeverage overnightMaxLeverage
    group { name minLeverage maxLeverage }
    fee { minLevPos }
  }
}
"""

_OPEN_TRADES_QUERY: Final = """
query trades($trader: Bytes!) {
  trades(first: 1000, where: {isOpen: true, trader: $trader}) {
    tradeID index collateral leverage openPrice takeProfitPrice stopLossPrice isBuy timestamp
    pair { id from to }
  }
}
"""

_OPEN_ORDERS_QUERY: Final = """
query orders($trader: Bytes!) {
  limits(first: 1000, where: {trader: $trader, isActive: true}, orderBy: initiatedAt, orderDirection: asc) {
    id collateral leverage isBuy openPrice limitType initiatedAt
    pair { id from to }
  }
  orders(first: 1000, where: {trader: $trader, isPending: true}) {
    id orderAction collateral leverage isBuy price initiatedAt
    pair { id from to }
  }
}
"""

# The keeper's closes of one trade (``native_close``).
_NATIVE_CLOSE_QUERY: Final = """
query nativeClose($trader: Bytes!, $tradeID: String!) {
  orders(first: 10, where: {trader: $trader, tradeID: $tradeID, isPending: false, isCancelled: false}) {
    id orderAction price executedAt
  }
}
"""
_NATIVE_CLOSE_KINDS: Final = {
    "TakeProfit": "take_profit",
    "StopLoss": "stop_loss",
    "Liquidation": "liquidation",
}

# The transaction hash replaces TX_HASH (it was checked to be 32 hex bytes): a string literal
# is accepted whether the subgraph types ``initiatedTx`` as Bytes or as String.
_ORDERS_OF_TRANSACTION_QUERY: Final = """
query orderOfTransaction {
  orders(first: 10, where: {initiatedTx: "TX_HASH"}) {
    id orderAction isPending isCancelled cancelReason price priceAfterImpact collateral leverage
  }
}
"""


class OstiumVenue(Venue, WalletTradedVenue):
    name = "ostium"

    def __init__(
        self,
        *,
        rpc_url: str,
        chain_id: int | str,
        price_url: str,
        subgraph_url: str,
        trading_contract: str,
        trading_storage_contract: str,
        usdc_address: str,
        timeout: float | str = 10.0,
        max_attempts: int | str = 3,
        backoff_seconds: float | str = 0.2,
        abi_version: str = "day-trade",
    ) -> None:
        """Options come from ``settings.PROVIDERS["ostium"]`` as strings; empty optional ones
        keep their defaults. ``timeout`` bounds each HTTP or RPC attempt. ``abi_version``:
        ``day-trade`` (the newest SDK's ``openTrade`` with ``isDayTrade``, selector
        0x1365e4e4) or ``legacy`` (the struct without it); see the README to check which one
        the deployed contract takes."""
        self.chain_id = int(chain_id)
        abi = TRADING_BY_ABI_VERSION.get(abi_version or "day-trade")
        if abi is None:
            raise ValueError(f"abi_version is one of {', '.join(TRADING_BY_ABI_VERSION)}")
        self._trading_abi = abi
        self.abi_version = abi_version or "day-trade"
        self.trading_contract = _address(trading_contract, "trading_contract")
        self.trading_storage_contract = _address(trading_storage_contract, "trading_storage_contract")
        self.usdc_address = _address(usdc_address, "usdc_address")
        self._client = OstiumClient(
            price_url=price_url,
            subgraph_url=subgraph_url,
            rpc_url=rpc_url,
            chain_id=self.chain_id,
            timeout=float(timeout or 10.0),
            max_attempts=int(max_attempts or 3),
            backoff_seconds=float(backoff_seconds or 0.2),
        )

    def close(self) -> None:
        self._client.close()

    def health_check(self) -> None:
        """One GET of the price service (no retry) and the RPC's ``eth_chainId`` (which must be
        the configured chain) and ``eth_blockNumber``: prices feed every quote, and the RPC
        answers the allowance and delegation reads."""
        self._client.latest_prices(retry=False)
        self._client.check_chain()

    # --- market data -------------------------------------------------------------------

    def markets(self) -> list[Market]:
        """The subgraph's pairs in our four categories, by pair index.

        ``venue_symbol`` is the pair index the builders take. ``max_leverage`` is the smaller
        of the pair's and its group's non-zero limits: which one the contract enforces is
        not documented, and offering less never makes a trade revert. ``min_collateral`` is
        the smallest collateral any trade can have, ``fee.minLevPos`` at ``max_leverage``
        (the contract wants collateral x leverage >= minLevPos). A malformed pair is left
        out with a warning rather than failing the whole catalogue.
        """
        data = self._client.query(_PAIRS_QUERY)
        pairs = data.get("pairs")
        if not isinstance(pairs, list):
            raise ProviderError(PROVIDER, "the subgraph answer holds no pair list", response=data)
        markets = []
        for pair in pairs:
            try:
                market = _market(pair)
            except (KeyError, TypeError, ValueError, InvalidOperation):
                logger.warning("ostium: pair left out, unexpected shape: %r", pair)
                continue
            if market is not None:
                markets.append(market)
        return sorted(markets, key=lambda m: int(m.venue_symbol))

    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        """One GET of the price service answers every symbol (it lists every feed).

        Our symbol is the feed's ``from`` + ``to`` (``EURUSD``). A feed without a usable bid,
        ask or timestamp is left out with a warning, like a symbol Ostium does not list.
        """
        wanted = set(symbols)
        if not wanted:
            return {}
        quotes: dict[str, Quote] = {}
        for entry in self._client.latest_prices():
            symbol = f"{entry.get('from', '')}{entry.get('to', '')}".upper()
            if symbol not in wanted or symbol in quotes:
                continue
            try:
                quotes[symbol] = _quote(symbol, entry)
            except (KeyError, TypeError, ValueError, InvalidOperation, OverflowError):
                logger.warning("ostium: price of %s left out, unexpected shape: %r", symbol, entry)
        return quotes

    # --- the trader's account ----------------------------------------------------------

    def account_ref(self, *, user_id: str, wallet_addresses: Iterable[str]) -> str:
        """The trader is the user's first wallet (its transactions are the trades); "" if none."""
        return next(iter(wallet_addresses), "")

    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        """Open trades of the trader whose address is ``account_ref``.

        ``venue_position_id`` is Ostium's protocol-wide trade id; ``extra`` carries
        ``pair_index`` and ``index`` (what the builders take, an index is reused once its
        trade is closed), ``take_profit`` / ``stop_loss`` when set and ``opened_at``. A trade
        the subgraph describes in an unexpected shape is an error, never silently dropped:
        a missing position would read as a closed one.
        """
        trader = _address(account_ref, "account_ref")
        data = self._client.query(_OPEN_TRADES_QUERY, {"trader": trader.lower()})
        trades = data.get("trades")
        if not isinstance(trades, list):
            raise ProviderError(PROVIDER, "the subgraph answer holds no trade list", response=data)
        try:
            return [_position(trade) for trade in trades]
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise ProviderError(PROVIDER, f"a trade has an unexpected shape: {exc!r}", response=data) from exc

    def open_orders(self, *, account_ref: str) -> list[VenueOrder]:
        """The trader's resting limit / stop orders (``status=VenueOrderStatus.OPEN``) and market orders
        still waiting for the keeper (``status=VenueOrderStatus.PENDING``), in one subgraph query.

        A limit's ``venue_order_id`` is the subgraph's ``{trader}_{pairIndex}_{index}``; a
        market order's is its order id. ``client_order_id`` is empty: Ostium stores none.
        """
        trader = _address(account_ref, "account_ref")
        data = self._client.query(_OPEN_ORDERS_QUERY, {"trader": trader.lower()})
        limits, pending = data.get("limits"), data.get("orders")
        if not isinstance(limits, list) or not isinstance(pending, list):
            raise ProviderError(PROVIDER, "the subgraph answer holds no order lists", response=data)
        try:
            return [
                *(
                    VenueOrder(
                        venue_order_id=str(limit["id"]), client_order_id="", status=VenueOrderStatus.OPEN
                    )
                    for limit in limits
                ),
                *(
                    VenueOrder(
                        venue_order_id=str(order["id"]), client_order_id="", status=VenueOrderStatus.PENDING
                    )
                    for order in pending
                ),
            ]
        except (KeyError, TypeError) as exc:
            raise ProviderError(
                PROVIDER, f"an order has an unexpected shape: {exc!r}", response=data
            ) from exc

    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        """Ostium keeps no client order id: an order is followed by the hash of the wallet
        transaction that sent it (what the trading layer stores as the order's venue client
        id), answered as ``transaction_outcome``. Any other id: None."""
        if not _TX_HASH.fullmatch(client_order_id):
            return None
        return self.transaction_outcome(tx_hash=client_order_id)

    def order_for_transaction(self, *, tx_hash: str) -> VenueOrder | None:
        """The order a trade transaction started, as the subgraph has indexed it: None until
        then (or if the transaction started none), ``pending`` until the keeper settles it,
        then ``filled`` (with the executed price) or ``cancelled`` (with Ostium's reason).

        ``venue_order_id`` is Ostium's order id; ``filled_size`` is collateral x leverage /
        price, in units of the pair's base asset.
        """
        if not _TX_HASH.fullmatch(tx_hash):
            raise ValueError(f"not a transaction hash: {tx_hash!r}")
        data = self._client.query(_ORDERS_OF_TRANSACTION_QUERY.replace("TX_HASH", tx_hash.lower()))
        orders = data.get("orders")
        if not isinstance(orders, list):
            raise ProviderError(PROVIDER, "the subgraph answer holds no order list", response=data)
        if not orders:
            return None
        try:
            return _order(orders[0])
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise ProviderError(
                PROVIDER, f"an order has an unexpected shape: {exc!r}", response=data
            ) from exc

    def deployed_abi_version(self) -> str | None:
        """Which ``abi_version`` the deployed trading contract takes: the one whose ``openTrade``
        selector its bytecode dispatches on (behind an EIP-1967 proxy, the implementation's
        code is read). None when neither selector is there (a contract we do not know)."""
        code = self._client.code(address=self.trading_contract)
        implementation = self._client.storage_word(
            address=self.trading_contract, slot=EIP1967_IMPLEMENTATION_SLOT
        )
        if int.from_bytes(implementation, "big"):
            code += self._client.code(address=to_checksum_address(implementation[-20:]))
        for version, selector in OPEN_TRADE_SELECTORS.items():
            # A Solidity dispatcher compares the calldata with PUSH4 <selector>.
            if b"\x63" + bytes.fromhex(selector[2:]) in code:
                return version
        return None

    def usdc_allowance(self, *, owner: str) -> Decimal:
        """USDC that Ostium's TradingStorage may still take from ``owner`` (an ``eth_call``)."""
        data = ERC20.encode_abi("allowance", args=[_address(owner, "owner"), self.trading_storage_contract])
        return _units_to_decimal(_word(self._client.call(to=self.usdc_address, data=data)), USDC_DECIMALS)

    def delegate_of(self, *, trader: str) -> str | None:
        """The address allowed to trade for ``trader`` through ``delegatedAction``, if any."""
        data = TRADING.encode_abi("delegations", args=[_address(trader, "trader")])
        word = _word(self._client.call(to=self.trading_contract, data=data))
        return None if word == 0 else to_checksum_address(word.to_bytes(32, "big")[-20:])

    # --- writes go through the trader's wallet -----------------------------------------

    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        raise _sent_by_wallet("build_order (or build_open_trade)")

    def cancel_order(self, *, account_ref: str, venue_order_id: str) -> VenueOrder:
        raise _sent_by_wallet("build_cancel_limit_order")

    def close_position(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        size: Decimal | None = None,
        client_order_id: str = "",
    ) -> VenueOrder:
        raise _sent_by_wallet("build_close_trade")

    # --- traded from the user's wallet (WalletTradedVenue) -------------------------------

    @property
    def wallet_chain_id(self) -> int:
        return self.chain_id

    def collateral_token(self) -> TokenSpec:
        return TokenSpec(symbol="USDC", address=self.usdc_address, decimals=USDC_DECIMALS)

    def open_trade(self, *, order: VenueOrderRequest, market_price: Decimal) -> WalletTrade:
        """``openTrade`` of ``order`` with its stop-loss and take-profit, preceded by a USDC
        approval to TradingStorage when the allowance is short (of the SDK's size, 1,000,000
        USDC, so that later trades need none). Never a day trade: see ``_market``."""
        setup: tuple[EvmTransaction, ...] = ()
        if self.usdc_allowance(owner=order.account_ref) < order.collateral:
            setup = (self.build_usdc_approval(amount=APPROVAL_AMOUNT),)
        action = self.build_order(
            order=order,
            pair_index=self._pair_index(order.symbol),
            market_price=_price_units(market_price),
        )
        return WalletTrade(action=action, setup=setup)

    def close_trade(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        size: Decimal,
        position_size: Decimal,
        market_price: Decimal,
    ) -> WalletTrade:
        """``closeTradeMarket`` of ``size`` out of ``position_size`` as a percentage (to the
        hundredth, rounded down; all of it when ``size`` reaches ``position_size``)."""
        trade = self._trade(account_ref, venue_position_id)
        if size >= position_size:
            percent, closes = Decimal(100), position_size
        else:
            percent = (size * 100 / position_size).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
            if percent <= 0:
                raise ProviderError(PROVIDER, f"{size} is less than 0.01 % of the trade", status_code=400)
            with localcontext() as context:
                context.prec = 80
                closes = (position_size * percent / 100).quantize(
                    Decimal(1).scaleb(-PRICE_DECIMALS), rounding=ROUND_DOWN
                )
        action = self.build_close_trade(
            trader=account_ref,
            pair_index=int(trade.extra["pair_index"]),
            index=int(trade.extra["index"]),
            market_price=_price_units(market_price),
            close_percent=percent,
        )
        return WalletTrade(action=action, size=closes)

    def protection_update(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        stop_loss: Decimal | None = None,
        take_profit: Decimal | None = None,
        clear_stop_loss: bool = False,
        clear_take_profit: bool = False,
    ) -> list[EvmTransaction]:
        """``updateSl`` / ``updateTp`` of the trade, for what is set or cleared (0 clears)."""
        trade = self._trade(account_ref, venue_position_id)
        pair_index, index = int(trade.extra["pair_index"]), int(trade.extra["index"])
        transactions = []
        if stop_loss is not None or clear_stop_loss:
            transactions.append(
                self.build_update_sl(
                    trader=account_ref, pair_index=pair_index, index=index, stop_loss=stop_loss
                )
            )
        if take_profit is not None or clear_take_profit:
            transactions.append(
                self.build_update_tp(
                    trader=account_ref, pair_index=pair_index, index=index, take_profit=take_profit
                )
            )
        return transactions

    def transaction_outcome(self, *, tx_hash: str) -> VenueOrder:
        """Not mined: pending. Reverted: rejected, with Ostium's error (the transaction is
        replayed on the state before its block to read it). Mined: the order it started as
        the subgraph has it, pending until the subgraph has indexed it."""
        receipt = self._client.receipt(tx_hash=tx_hash)
        if receipt is None:
            return VenueOrder(venue_order_id="", client_order_id=tx_hash, status=VenueOrderStatus.PENDING)
        if not receipt.success:
            quoted = self._client.revert_data(tx_hash=tx_hash, block_number=receipt.block_number)
            reason = self.revert_reason(ProviderError(PROVIDER, quoted)) if quoted else None
            return VenueOrder(
                venue_order_id="",
                client_order_id=tx_hash,
                status=VenueOrderStatus.REJECTED,
                reject_reason=f"the transaction reverted: {reason or quoted or 'no reason given'}",
            )
        order = self.order_for_transaction(tx_hash=tx_hash)
        if order is None:
            return VenueOrder(venue_order_id="", client_order_id=tx_hash, status=VenueOrderStatus.PENDING)
        return replace(order, client_order_id=tx_hash)

    def native_close(self, *, account_ref: str, venue_position_id: str) -> NativeClose | None:
        """The keeper's close of the trade at its take-profit, stop-loss or liquidation, from
        the subgraph's executed orders of the trader for that trade id (None while there is
        none). The filter's field names follow the SDK's order history query; ``tradeID`` on
        an order is not confirmed against the live subgraph (see the README)."""
        trader = _address(account_ref, "account_ref")
        data = self._client.query(
            _NATIVE_CLOSE_QUERY, {"trader": trader.lower(), "tradeID": str(venue_position_id)}
        )
        orders = data.get("orders")
        if not isinstance(orders, list):
            raise ProviderError(PROVIDER, "the subgraph answer holds no order list", response=data)
        for order in orders:
            try:
                kind = _NATIVE_CLOSE_KINDS.get(str(order["orderAction"]))
                if kind is None:
                    continue
                price = _units_to_decimal(order["price"], PRICE_DECIMALS)
                return NativeClose(kind=kind, price=price, venue_order_id=str(order["id"]))
            except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
                raise ProviderError(
                    PROVIDER, f"an order has an unexpected shape: {exc!r}", response=data
                ) from exc
        return None

    def _pair_index(self, symbol: str) -> int:
        market = next((m for m in self.markets() if m.symbol == symbol), None)
        if market is None:
            raise ProviderError(PROVIDER, f"Ostium lists no pair {symbol}", status_code=400)
        return int(market.venue_symbol)

    def _trade(self, account_ref: str, venue_position_id: str) -> VenuePosition:
        trade = next(
            (p for p in self.positions(account_ref=account_ref) if p.venue_position_id == venue_position_id),
            None,
        )
        if trade is None:
            raise ProviderError(
                PROVIDER, f"no open trade {venue_position_id} of {account_ref}", status_code=404
            )
        return trade

    # --- transaction builders ----------------------------------------------------------

    def build_order(
        self,
        *,
        order: VenueOrderRequest,
        pair_index: int,
        market_price: Decimal,
        slippage_percent: Decimal = DEFAULT_SLIPPAGE_PERCENT,
        via_delegate: bool = False,
    ) -> EvmTransaction:
        """``build_open_trade`` for one of our order requests; ``account_ref`` is the trader.

        A market order is sent at ``market_price`` (the slippage reference). A limit order
        becomes Ostium's LIMIT when its price is at or better than ``market_price`` (below
        it for a long, above it for a short), else Ostium's STOP, which waits for the price
        to move through it.
        """
        if order.type == OrderType.MARKET:
            price, order_type = market_price, OpenOrderType.MARKET
        else:
            if order.price is None:
                raise ValueError("a limit order needs a price")
            price = order.price
            better = price <= market_price if order.side == Side.LONG else price >= market_price
            order_type = OpenOrderType.LIMIT if better else OpenOrderType.STOP
        return self.build_open_trade(
            trader=order.account_ref,
            pair_index=pair_index,
            side=order.side,
            collateral=order.collateral,
            leverage=order.leverage,
            price=price,
            order_type=order_type,
            take_profit=order.take_profit,
            stop_loss=order.stop_loss,
            slippage_percent=slippage_percent,
            via_delegate=via_delegate,
        )

    def build_open_trade(
        self,
        *,
        trader: str,
        pair_index: int,
        side: Side,
        collateral: Decimal,
        leverage: Decimal,
        price: Decimal,
        order_type: OpenOrderType = OpenOrderType.MARKET,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        slippage_percent: Decimal = DEFAULT_SLIPPAGE_PERCENT,
        is_day_trade: bool = False,
        builder: str | None = None,
        builder_fee_percent: Decimal = Decimal(0),
        via_delegate: bool = False,
    ) -> EvmTransaction:
        """``OstiumTrading.openTrade(t, bf, orderType, slippageP)``.

        ``price`` is the expected price of a market order (``slippage_percent`` away from it
        at most) or the trigger price of a limit / stop order (sent with zero slippage, as
        the contract requires). The take-profit must lie beyond ``price`` in the trade's
        favour and the stop-loss against it (the contract reverts otherwise). The trade's
        ``index`` is left 0: the contract assigns it. ``builder`` earns
        ``builder_fee_percent`` (at most 0.5 %) of the trade.
        """
        trader_address = _address(trader, "trader")
        buy = side == Side.LONG
        open_price = _to_units(price, PRICE_DECIMALS, "price", bits=192)
        tp = _to_units(take_profit, PRICE_DECIMALS, "take_profit", bits=192) if take_profit else 0
        sl = _to_units(stop_loss, PRICE_DECIMALS, "stop_loss", bits=192) if stop_loss else 0
        if tp and (tp <= open_price if buy else tp >= open_price):
            raise ValueError(f"take_profit {take_profit} is on the wrong side of {price} for a {side} trade")
        if sl and (sl >= open_price if buy else sl <= open_price):
            raise ValueError(f"stop_loss {stop_loss} is on the wrong side of {price} for a {side} trade")
        slippage = 0
        if order_type == OpenOrderType.MARKET:
            slippage = _percent_units(slippage_percent, "slippage_percent", allow_zero=True)
        if builder_fee_percent > MAX_BUILDER_FEE_PERCENT:
            raise ValueError(f"builder_fee_percent is at most {MAX_BUILDER_FEE_PERCENT}")
        builder_fee = _to_units(
            builder_fee_percent, BUILDER_FEE_DECIMALS, "builder_fee_percent", bits=32, allow_zero=True
        )
        if builder_fee and builder is None:
            raise ValueError("a builder fee needs a builder address")
        trade = (
            _to_units(collateral, USDC_DECIMALS, "collateral", bits=256),
            open_price,
            tp,
            sl,
            trader_address,
            _to_units(leverage, HUNDREDTHS, "leverage", bits=32),
            _uint(pair_index, "pair_index", bits=16),
            0,
            buy,
            is_day_trade,
        )
        fee = (_address(builder, "builder") if builder else ZERO_ADDRESS, builder_fee)
        return self._trading_call(
            "openTrade", [trade, fee, int(OpenOrderType(order_type)), slippage], trader_address, via_delegate
        )

    def build_close_trade(
        self,
        *,
        trader: str,
        pair_index: int,
        index: int,
        market_price: Decimal,
        close_percent: Decimal = Decimal(100),
        slippage_percent: Decimal = DEFAULT_SLIPPAGE_PERCENT,
        via_delegate: bool = False,
    ) -> EvmTransaction:
        """``closeTradeMarket(pairIndex, index, closePercentage, marketPrice, slippageP)``:
        close ``close_percent`` (0 < x <= 100) of the trade at market, ``market_price`` being
        the slippage reference. Settled later by the keeper, like an open."""
        if not Decimal(0) < close_percent <= Decimal(100):
            raise ValueError("close_percent must be above 0 and at most 100")
        args = [
            _uint(pair_index, "pair_index", bits=16),
            _uint(index, "index", bits=8),
            _to_units(close_percent, HUNDREDTHS, "close_percent", bits=16),
            _to_units(market_price, PRICE_DECIMALS, "market_price", bits=192),
            _percent_units(slippage_percent, "slippage_percent", allow_zero=True),
        ]
        return self._trading_call("closeTradeMarket", args, _address(trader, "trader"), via_delegate)

    def build_update_tp(
        self,
        *,
        trader: str,
        pair_index: int,
        index: int,
        take_profit: Decimal | None,
        via_delegate: bool = False,
    ) -> EvmTransaction:
        """``updateTp(pairIndex, index, newTp)``; None sends 0, which removes the take-profit."""
        tp = _to_units(take_profit, PRICE_DECIMALS, "take_profit", bits=192) if take_profit is not None else 0
        args = [_uint(pair_index, "pair_index", bits=16), _uint(index, "index", bits=8), tp]
        return self._trading_call("updateTp", args, _address(trader, "trader"), via_delegate)

    def build_update_sl(
        self,
        *,
        trader: str,
        pair_index: int,
        index: int,
        stop_loss: Decimal | None,
        via_delegate: bool = False,
    ) -> EvmTransaction:
        """``updateSl(pairIndex, index, newSl)``; None sends 0, which removes the stop-loss.
        The contract refuses a stop further than its maximum loss from the open price."""
        sl = _to_units(stop_loss, PRICE_DECIMALS, "stop_loss", bits=192) if stop_loss is not None else 0
        args = [_uint(pair_index, "pair_index", bits=16), _uint(index, "index", bits=8), sl]
        return self._trading_call("updateSl", args, _address(trader, "trader"), via_delegate)

    def build_cancel_limit_order(
        self, *, trader: str, pair_index: int, index: int, via_delegate: bool = False
    ) -> EvmTransaction:
        """``cancelOpenLimitOrder(pairIndex, index)``: the collateral goes back to the trader."""
        args = [_uint(pair_index, "pair_index", bits=16), _uint(index, "index", bits=8)]
        return self._trading_call("cancelOpenLimitOrder", args, _address(trader, "trader"), via_delegate)

    def build_usdc_approval(self, *, amount: Decimal) -> EvmTransaction:
        """``USDC.approve(TradingStorage, amount)``, sent by the trader's own wallet.

        The spender is TradingStorage, not Trading: it is the contract that pulls the
        collateral. An approval replaces the previous allowance rather than adding to it.
        """
        data = ERC20.encode_abi(
            "approve",
            args=[
                self.trading_storage_contract,
                _to_units(amount, USDC_DECIMALS, "amount", bits=256, allow_zero=True),
            ],
        )
        return EvmTransaction(chain_id=self.chain_id, to=self.usdc_address, data=data)

    def build_set_delegate(self, *, delegate: str) -> EvmTransaction:
        """``setDelegate(delegate)``, sent once by the trader's wallet: from then on ``delegate``
        may send this trader's ``via_delegate=True`` transactions."""
        data = TRADING.encode_abi("setDelegate", args=[_address(delegate, "delegate")])
        return EvmTransaction(chain_id=self.chain_id, to=self.trading_contract, data=data)

    def build_remove_delegate(self) -> EvmTransaction:
        """``removeDelegate()``, sent by the trader's wallet to revoke its delegate."""
        return EvmTransaction(
            chain_id=self.chain_id,
            to=self.trading_contract,
            data=TRADING.encode_abi("removeDelegate", args=[]),
        )

    @staticmethod
    def revert_reason(error: Exception) -> str | None:
        """The name of the Ostium custom error (``BelowMinLevPos``, ``WrongSL``...) whose revert
        data a wallet provider's or chain client's error quotes, if any."""
        quoted = f"{getattr(error, 'message', error)} {getattr(error, 'response', '')!r}"
        for match in _SELECTOR.finditer(quoted):
            name = ERROR_BY_SELECTOR.get(match.group(1).lower())
            if name is not None:
                return name
        return None

    def _trading_call(
        self, function: str, args: list[Any], trader: ChecksumAddress, via_delegate: bool
    ) -> EvmTransaction:
        if function == "openTrade" and self.abi_version == "legacy":
            trade = args[0]
            args = [trade[:-1], *args[1:]]  # no isDayTrade in the legacy struct
        data = self._trading_abi.encode_abi(function, args=args)
        if via_delegate:
            data = TRADING.encode_abi("delegatedAction", args=[trader, bytes.fromhex(data[2:])])
        return EvmTransaction(chain_id=self.chain_id, to=self.trading_contract, data=data)


# --- mapping the subgraph and the price service ----------------------------------------


def _market(pair: dict[str, Any]) -> Market | None:
    group = pair["group"]
    category = _category(str(group["name"]))
    if category is None:
        return None
    # The overnight maximum counts too: above it a trade must be a day trade, which Ostium
    # closes at the day-trading close; we open none (see the README), so it is our limit.
    limits = [
        limit
        for limit in (
            _units_to_decimal(pair["maxLeverage"], HUNDREDTHS),
            _units_to_decimal(group["maxLeverage"], HUNDREDTHS),
            _units_to_decimal(pair.get("overnightMaxLeverage") or 0, HUNDREDTHS),
        )
        if limit > 0
    ]
    if not limits:
        return None
    max_leverage = min(limits)
    min_position = _units_to_decimal(pair["fee"]["minLevPos"], USDC_DECIMALS)
    return Market(
        symbol=f"{pair['from']}{pair['to']}".upper(),
        venue_symbol=str(int(pair["id"])),
        category=category,
        tick_size=TICK_SIZE,
        size_step=SIZE_STEP,
        min_collateral=(min_position / max_leverage).quantize(SIZE_STEP, rounding=ROUND_CEILING),
        max_leverage=max_leverage,
    )


def _category(group_name: str) -> MarketCategory | None:
    label = _text(group_name).strip().lower()
    for words, category in _CATEGORY_WORDS:
        if any(word in label for word in words):
            return category
    if not any(word in label for word in _UNLISTED_GROUP_WORDS):
        logger.warning("ostium: pairs of the unknown group %r are not listed", group_name)
    return None


def _text(value: str) -> str:
    """A bytes32 name in hex (as the contracts store it) decoded; any other text as is."""
    if re.fullmatch(r"0x[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value[2:]).rstrip(b"\0").decode(errors="replace")
    return value


def _quote(symbol: str, entry: dict[str, Any]) -> Quote:
    bid, ask = _json_decimal(entry["bid"]), _json_decimal(entry["ask"])
    if bid <= 0 or ask <= 0:
        raise ValueError("a price must be positive")
    return Quote(
        symbol=symbol,
        bid=bid,
        ask=ask,
        ts=datetime.fromtimestamp(int(entry["timestampSeconds"]), tz=UTC),
        # Like the SDK, a feed that does not say its market is open is taken as closed.
        market_open=entry.get("isMarketOpen") is True,
    )


def _json_decimal(value: Any) -> Decimal:
    """A JSON number as the service wrote it: floats come back through their shortest repr,
    which is the literal any JSON encoder prints."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _position(trade: dict[str, Any]) -> VenuePosition:
    pair = trade["pair"]
    collateral = _units_to_decimal(trade["collateral"], USDC_DECIMALS)
    leverage = _units_to_decimal(trade["leverage"], HUNDREDTHS)
    entry_price = _units_to_decimal(trade["openPrice"], PRICE_DECIMALS)
    extra = {
        "trade_id": str(trade["tradeID"]),
        "pair_index": str(int(pair["id"])),
        "index": str(int(trade["index"])),
        "opened_at": datetime.fromtimestamp(int(trade["timestamp"]), tz=UTC).isoformat(),
    }
    for key, field in (("take_profit", "takeProfitPrice"), ("stop_loss", "stopLossPrice")):
        level = _units_to_decimal(trade.get(field) or 0, PRICE_DECIMALS)
        if level:
            extra[key] = str(level)
    return VenuePosition(
        venue_position_id=str(trade["tradeID"]),
        symbol=f"{pair['from']}{pair['to']}".upper(),
        side=Side.LONG if trade["isBuy"] else Side.SHORT,
        size=_base_size(collateral, leverage, entry_price),
        entry_price=entry_price,
        collateral=collateral,
        leverage=leverage,
        extra=extra,
    )


def _order(order: dict[str, Any]) -> VenueOrder:
    order_id = str(order["id"])
    if order["isPending"]:
        return VenueOrder(venue_order_id=order_id, client_order_id="", status=VenueOrderStatus.PENDING)
    if order["isCancelled"]:
        reason = order.get("cancelReason")
        return VenueOrder(
            venue_order_id=order_id,
            client_order_id="",
            status=VenueOrderStatus.CANCELLED,
            reject_reason=str(reason) if reason is not None else None,
        )
    price = _units_to_decimal(order.get("priceAfterImpact") or order["price"], PRICE_DECIMALS)
    size = _base_size(
        _units_to_decimal(order["collateral"], USDC_DECIMALS),
        _units_to_decimal(order["leverage"], HUNDREDTHS),
        price,
    )
    return VenueOrder(
        venue_order_id=order_id,
        client_order_id="",
        status=VenueOrderStatus.FILLED,
        filled_size=size,
        avg_fill_price=price,
    )


def _price_units(price: Decimal) -> Decimal:
    """A quote (a mid may have more digits) to the 18 decimals a price travels in."""
    return price.quantize(Decimal(1).scaleb(-PRICE_DECIMALS), rounding=ROUND_DOWN)


def _base_size(collateral: Decimal, leverage: Decimal, price: Decimal) -> Decimal:
    """Collateral x leverage in units of the base asset at ``price``, to 18 decimals."""
    if price <= 0:
        return Decimal(0)
    with localcontext() as context:
        context.prec = 80
        return (collateral * leverage / price).quantize(
            Decimal(1).scaleb(-PRICE_DECIMALS), rounding=ROUND_DOWN
        )


# --- units -------------------------------------------------------------------------------


def _to_units(value: Decimal | None, decimals: int, what: str, *, bits: int, allow_zero: bool = False) -> int:
    """``value`` x 10**decimals as an exact integer that fits ``bits``; never rounds."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{what} must be a finite Decimal, not {value!r}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent + decimals
    if shift >= 0:
        units = coefficient * 10**shift
    else:
        units, remainder = divmod(coefficient, 10**-shift)
        if remainder:
            raise ValueError(f"{what} {value} has more than {decimals} decimals")
    if sign and units:
        raise ValueError(f"{what} cannot be negative")
    if units == 0 and not allow_zero:
        raise ValueError(f"{what} must be positive")
    if units >= 2**bits:
        raise ValueError(f"{what} {value} is too large")
    return units


def _percent_units(value: Decimal, what: str, *, allow_zero: bool = False) -> int:
    if value >= MAX_SLIPPAGE_PERCENT:
        raise ValueError(f"{what} must be below {MAX_SLIPPAGE_PERCENT}")
    return _to_units(value, HUNDREDTHS, what, bits=32, allow_zero=allow_zero)


def _units_to_decimal(raw: int | str, decimals: int) -> Decimal:
    """An on-chain or subgraph integer (BigInt strings included) scaled down exactly."""
    units = int(str(raw))
    whole, fraction = divmod(abs(units), 10**decimals)
    sign = "-" if units < 0 else ""
    if not fraction:
        return Decimal(f"{sign}{whole}")
    return Decimal(f"{sign}{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')}")


def _uint(value: int, what: str, *, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise ValueError(f"{what} must be an integer from 0 to {2**bits - 1}")
    return value


def _word(answer: bytes) -> int:
    if len(answer) != 32:
        raise ProviderError(
            PROVIDER, f"the contract answered {len(answer)} bytes, not one word", response=answer.hex()
        )
    return int.from_bytes(answer, "big")


def _address(value: str, what: str) -> ChecksumAddress:
    if not isinstance(value, str) or not is_address(value):
        raise ValueError(f"{what} is not an EVM address: {value!r}")
    return to_checksum_address(value)


def _sent_by_wallet(builder: str) -> ProviderError:
    return ProviderError(
        PROVIDER,
        f"Ostium orders are transactions sent through the user's wallet: build one with "
        f"OstiumVenue.{builder} and send it with the user's wallet provider",
        retryable=False,
    )
