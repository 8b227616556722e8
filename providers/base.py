"""The interfaces every external system sits behind: one small ABC per capability.

Methods return frozen dataclasses of ours (Decimal amounts, EIP-55 addresses, our enums),
never vendor JSON or SDK objects. Failures raise ``providers.errors.ProviderError``.
Adapters are built by ``providers.registry`` from the provider's active configuration.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar


class ProviderKind(StrEnum):
    VENUE = "venue"
    WALLET = "wallet"
    SWAP = "swap"
    CHAIN = "chain"


class ProviderAdapter(ABC):
    """What every adapter has: a name, a kind, and a cheap health probe."""

    name: ClassVar[str]
    kind: ClassVar[ProviderKind]

    @abstractmethod
    def health_check(self) -> None:
        """Make the cheapest real call that proves the provider answers (and accepts our
        credentials); raise ProviderError otherwise. Used by the circuit breaker's probe."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing
        """Release connections; called when the adapter is replaced after a config change."""


# --- Wallets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletInfo:
    """A wallet as a wallet provider holds it."""

    provider: str
    provider_wallet_id: str
    address: str  # EIP-55 checksummed
    chain_type: str  # "ethereum"


@dataclass(frozen=True)
class EvmTransaction:
    """An EVM transaction to sign and send; amounts in wei, gas fields optional (estimated)."""

    chain_id: int
    to: str
    data: str = "0x"
    value: int = 0
    gas_limit: int | None = None


@dataclass(frozen=True)
class SentTransaction:
    chain_id: int
    tx_hash: str  # 0x-prefixed


class WalletProvider(ProviderAdapter):
    """Creates custodial (MPC / server) wallets for our users and signs with them."""

    kind = ProviderKind.WALLET

    @abstractmethod
    def create_wallet(
        self, *, owner_ref: str, chain_type: str, idempotency_key: str, email: str | None = None
    ) -> WalletInfo:
        """Create a wallet for the user ``owner_ref`` (our user id).

        Must be safe to call again with the same ``idempotency_key``: a retry after a
        timeout returns the wallet the first call created instead of a second one.
        ``email`` is given when the user has a verified one (some providers key users by it).
        """

    @abstractmethod
    def get_wallet(self, *, provider_wallet_id: str) -> WalletInfo:
        """Return the wallet, or raise ProviderError with status_code 404 if the provider has none."""

    @abstractmethod
    def sign_message(self, *, provider_wallet_id: str, message: str) -> str:
        """EIP-191 ``personal_sign`` of the UTF-8 ``message``; returns the 65-byte signature as 0x-hex."""

    @abstractmethod
    def sign_and_send_transaction(
        self, *, provider_wallet_id: str, transaction: EvmTransaction
    ) -> SentTransaction:
        """Sign ``transaction`` with the wallet and broadcast it; returns its hash.

        Not idempotent: callers record the hash and never resend blindly after a timeout.
        """


# --- Chains ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpec:
    """An ERC-20 token on one chain, as configured."""

    symbol: str
    address: str  # EIP-55
    decimals: int


@dataclass(frozen=True)
class TokenBalance:
    symbol: str
    token_address: str | None  # None for the chain's native coin
    decimals: int
    raw: int  # base units
    amount: Decimal  # raw scaled by decimals, exact


@dataclass(frozen=True)
class TransactionReceipt:
    tx_hash: str
    block_number: int
    success: bool
    from_address: str
    to_address: str | None
    confirmations: int
    block_hash: str = ""


@dataclass(frozen=True)
class NativeTransfer:
    """A successful transaction that sent the chain's native coin (``value`` > 0) to ``to_address``."""

    tx_hash: str
    block_number: int
    from_address: str
    to_address: str
    raw: int  # wei


@dataclass(frozen=True)
class TransactionTransfers:
    """What one mined transaction moved: its receipt, the native value it carried and its
    ERC-20 ``Transfer`` events (every token, every recipient), for verifying a reported deposit."""

    receipt: TransactionReceipt
    native: NativeTransfer | None
    token_transfers: list[TokenTransfer]


@dataclass(frozen=True)
class TokenTransfer:
    """One ERC-20 ``Transfer`` event."""

    tx_hash: str
    log_index: int
    block_number: int
    token_address: str
    from_address: str
    to_address: str
    raw: int


class ChainClient(ProviderAdapter):
    """Reads one EVM chain through JSON-RPC."""

    kind = ProviderKind.CHAIN
    chain_id: int

    @abstractmethod
    def balances(self, *, address: str, tokens: list[TokenSpec]) -> list[TokenBalance]:
        """The native balance first, then one entry per token, in the order given."""

    @abstractmethod
    def is_valid_signature(self, *, address: str, message_hash: bytes, signature: bytes) -> bool:
        """EIP-1271: whether the contract at ``address`` accepts ``signature`` for ``message_hash``.

        False (not an error) when ``address`` has no code or the call reverts.
        """

    @abstractmethod
    def receipt(self, *, tx_hash: str) -> TransactionReceipt | None:
        """The mined transaction's receipt with its confirmation count, or None while pending/unknown."""

    @abstractmethod
    def block_number(self) -> int:
        """The latest block number."""

    @abstractmethod
    def token_transfers_to(
        self, *, address: str, tokens: list[str], from_block: int, to_block: int
    ) -> list[TokenTransfer]:
        """ERC-20 transfers of any of ``tokens`` to ``address`` in the inclusive block range."""

    @abstractmethod
    def token_transfers(
        self, *, tokens: list[str], recipients: list[str], from_block: int, to_block: int
    ) -> list[TokenTransfer]:
        """ERC-20 transfers of any of ``tokens`` to any of ``recipients`` in the inclusive range."""

    @abstractmethod
    def native_transfers(
        self, *, recipients: list[str], from_block: int, to_block: int
    ) -> list[NativeTransfer]:
        """Successful transactions in the inclusive range sending native coin to any of ``recipients``."""

    @abstractmethod
    def transaction_transfers(self, *, tx_hash: str) -> TransactionTransfers | None:
        """The mined transaction's receipt and transfers, or None while pending or unknown."""

    @abstractmethod
    def block_hash(self, *, number: int) -> str | None:
        """The hash of the canonical block ``number``, or None beyond the head."""

    @abstractmethod
    def transaction_count(self, *, address: str, block: str = "latest") -> int:
        """The account's nonce at ``block`` (``latest`` or ``pending``)."""

    @abstractmethod
    def transaction_by_nonce(
        self, *, sender: str, nonce: int, from_block: int
    ) -> tuple[str, str | None] | None:
        """(hash, to) of the mined transaction ``sender`` sent with ``nonce``, searching from
        ``from_block`` to the head; None if there is none in that range."""

    @abstractmethod
    def erc20_allowance(self, *, token: str, owner: str, spender: str) -> int:
        """``allowance(owner, spender)`` of the ERC-20 ``token``, in base units."""


@dataclass(frozen=True)
class ChainSpec:
    """One supported EVM chain as configured: where to read it and what it accepts."""

    chain_id: int
    name: str
    confirmations: int  # blocks, the transfer's own included, before a deposit counts
    scan_batch_blocks: int  # the widest block range one scan request covers
    deposits_enabled: bool
    tokens: tuple[TokenSpec, ...]
    # Where the deposit scanner starts on a chain it has not scanned yet; None: at the head
    # (a chain added to a running platform has no deposits before it was added).
    scan_from_block: int | None = None

    def token(self, address: str) -> TokenSpec | None:
        wanted = address.lower()
        return next((token for token in self.tokens if token.address.lower() == wanted), None)


class ChainDirectory(ProviderAdapter):
    """The supported chains (runtime configuration) and a client for each."""

    kind = ProviderKind.CHAIN

    @abstractmethod
    def chain_ids(self) -> list[int]:
        """Every configured chain id, ascending."""

    @abstractmethod
    def spec(self, chain_id: int) -> ChainSpec:
        """The chain's configuration; ``ProviderNotConfigured`` for an unknown chain."""

    @abstractmethod
    def client(self, chain_id: int) -> ChainClient:
        """A client for the chain's RPC; ``ProviderNotConfigured`` if it has none."""

    @abstractmethod
    def gas_station_address(self, chain_id: int) -> str | None:
        """The chain's gas station address (its top-ups are not deposits), or None."""

    @abstractmethod
    def gas_topup(self, *, chain_id: int, to_address: str, wei: int) -> str | None:
        """Send ``wei`` of the native coin from the chain's gas station (the platform's wallet
        that pays users' first gas) to ``to_address``; the transaction hash, or None when the
        chain has no gas station configured."""

    @abstractmethod
    def token_transfer(self, *, chain_id: int, token: str, to_address: str, amount_raw: int) -> str | None:
        """Send ``amount_raw`` (base units) of the ERC-20 ``token`` from the chain's gas station
        (the platform's hot wallet there, which also funds users' venue wallets) to
        ``to_address``; the transaction hash, or None when the chain has no gas station. An
        estimate that reverts (the station holds too little of the token) raises the chain's
        ``ProviderError`` before anything is sent."""


# --- Venues ----------------------------------------------------------------------------


class MarketCategory(StrEnum):
    CRYPTO = "crypto"
    FOREX = "forex"
    INDICES = "indices"
    COMMODITIES = "commodities"


class Side(StrEnum):
    LONG = "long"
    SHORT = "short"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


@dataclass(frozen=True)
class Market:
    """A tradable pair as a venue lists it."""

    symbol: str  # ours, e.g. "BTCUSD"
    venue_symbol: str  # the venue's market id or name
    category: MarketCategory
    tick_size: Decimal
    size_step: Decimal
    min_collateral: Decimal
    max_leverage: Decimal


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    ts: datetime
    market_open: bool = True

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class VenueOrderRequest:
    account_ref: str  # the venue account of the user (sub-account, wallet, paper account)
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    collateral: Decimal
    leverage: Decimal
    price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None


class VenueOrderStatus(StrEnum):
    """Where an order stands at a venue. ``accepted`` / ``pending``: the venue has it and its
    outcome comes later (a stream, or polling by client id); ``unknown``: no answer could be
    had (never resend blindly: reconcile by client id)."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VenueOrder:
    venue_order_id: str
    client_order_id: str
    status: VenueOrderStatus  # a StrEnum: compares equal to its value
    filled_size: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    reject_reason: str | None = None


@dataclass(frozen=True)
class VenuePosition:
    venue_position_id: str
    symbol: str
    side: Side
    size: Decimal
    entry_price: Decimal
    collateral: Decimal
    leverage: Decimal
    extra: dict[str, str] = field(default_factory=dict)


class Venue(ProviderAdapter):
    """A place orders are executed: market data, orders and positions of our users' accounts."""

    kind = ProviderKind.VENUE

    #: The venue keeps its book in our own database and calls nothing outside this process:
    #: what it does commits or rolls back with the caller's transaction. An order for such a
    #: venue may be sent inside the transaction that records it (one transaction instead of
    #: three, and never an order at the venue that we have no row of). Any other venue is
    #: called only after the order row has committed.
    settles_in_caller_transaction: ClassVar[bool] = False

    @abstractmethod
    def account_ref(self, *, user_id: str, wallet_addresses: Iterable[str]) -> str:
        """The ``account_ref`` a user trades from at this venue, given the user's id and wallet
        addresses (oldest first). What every other method takes as ``account_ref``, and what a
        position records. "" when the venue trades from one account of its own configuration.
        Never calls the venue; ``wallet_addresses`` is read only by venues that need it."""

    @abstractmethod
    def markets(self) -> list[Market]:
        """Every pair the venue lists, with its trading limits."""

    @abstractmethod
    def prices(self, *, symbols: list[str]) -> dict[str, Quote]:
        """Quotes for many symbols in one call; symbols the venue does not know are left out."""

    @abstractmethod
    def place_order(self, *, order: VenueOrderRequest) -> VenueOrder:
        """Submit an order. Idempotent by ``client_order_id`` where the venue allows it."""

    @abstractmethod
    def cancel_order(self, *, account_ref: str, venue_order_id: str) -> VenueOrder:
        """Cancel a resting order; returns its final state."""

    @abstractmethod
    def get_order(self, *, account_ref: str, client_order_id: str) -> VenueOrder | None:
        """Look an order (or a close) up by its client id: how a pending answer's outcome is
        polled, and how an order whose answer was lost is reconciled (never resent blindly)."""

    @abstractmethod
    def positions(self, *, account_ref: str) -> list[VenuePosition]:
        """Open positions of the account."""

    @abstractmethod
    def open_orders(self, *, account_ref: str) -> list[VenueOrder]:
        """The account's orders still working at the venue: resting (``open``, or
        ``partially_filled`` while the rest still rests) or accepted and awaiting execution
        (``pending``). Filled, cancelled and rejected orders are left out.

        ``client_order_id`` is the venue's form of the client id: ours where the venue keeps it
        as sent, the venue's own (a hash, an index) or "" where it does not; callers match an
        order of theirs through ``get_order`` and its ``venue_order_id``, which is the same
        here and there. Used by reconciliation.
        """

    def venue_client_order_id(self, client_order_id: str) -> str:
        """Our ``client_order_id`` in the form ``open_orders`` reports it: the same where the
        venue keeps ours as sent (the default), the venue's own form where it does not (a
        hash). Lets reconciliation recognise an order of ours among the venue's."""
        return client_order_id

    @abstractmethod
    def close_position(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        size: Decimal | None = None,
        client_order_id: str = "",
    ) -> VenueOrder:
        """Close all (or ``size`` of) a position at market. The close may come back pending; the
        answer's ``client_order_id`` is what ``get_order`` follows it by: ``client_order_id``
        when given (a venue that can carry ours), else one the venue chose."""


@dataclass(frozen=True)
class WalletTrade:
    """What the user's wallet sends for one order, close or stop change, in this order:
    ``setup`` first (approvals the venue's contracts need; each must be mined before the
    next), then ``action``, whose transaction hash is how the venue's answer is followed
    (``WalletTradedVenue.transaction_outcome`` / ``Venue.get_order``).

    ``size``: for a close, the size the transaction really closes (a venue that closes by
    percentage rounds the asked size to its percentage step); None otherwise.
    """

    action: EvmTransaction
    setup: tuple[EvmTransaction, ...] = ()
    size: Decimal | None = None


@dataclass(frozen=True)
class NativeClose:
    """A position the venue closed by itself, at a stop it holds (``native``)."""

    kind: str  # "take_profit", "stop_loss" or "liquidation"
    price: Decimal
    venue_order_id: str


class WalletTradedVenue(ABC):
    """A venue traded from the user's own wallet: its orders are transactions the user's
    wallet provider signs and sends, not API calls of one platform account.

    Optional: a ``Venue`` that also subclasses this is traded by ``trading.services.
    wallet_trades``, which sends what these methods build through the user's wallet provider
    (``WalletProvider.sign_and_send_transaction``); its ``place_order``, ``close_position``
    and ``cancel_order`` may raise. Stop-loss and take-profit live at the venue (``native``):
    with the order (``VenueOrderRequest.stop_loss`` / ``take_profit``) and changed by
    ``protection_update``. ``get_order`` answers a transaction hash as ``transaction_outcome``.
    """

    @abstractmethod
    def collateral_token(self) -> TokenSpec:
        """The token the wallet pays collateral in, on ``wallet_chain_id``."""

    @property
    @abstractmethod
    def wallet_chain_id(self) -> int:
        """The chain the wallet's transactions go to."""

    @abstractmethod
    def open_trade(self, *, order: VenueOrderRequest, market_price: Decimal) -> WalletTrade:
        """The transactions that open ``order`` (``account_ref`` is the wallet's address) at
        ``market_price`` (the slippage reference of a market order), approvals included when
        the venue may not take the collateral yet."""

    @abstractmethod
    def close_trade(
        self,
        *,
        account_ref: str,
        venue_position_id: str,
        size: Decimal,
        position_size: Decimal,
        market_price: Decimal,
    ) -> WalletTrade:
        """The transaction that closes ``size`` of the venue's position (all of it when
        ``size`` >= ``position_size``, our size of it) at market; ``WalletTrade.size`` says
        how much it really closes."""

    @abstractmethod
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
        """The transactions that set (or clear) the position's stop-loss and take-profit at
        the venue; only what is asked for changes."""

    @abstractmethod
    def transaction_outcome(self, *, tx_hash: str) -> VenueOrder:
        """What became of the order a wallet transaction sent: ``pending`` while it is not
        mined, or mined and not executed (or not indexed) yet; ``rejected`` with the reason
        when it reverted; then ``filled`` (price and size from the chain) or ``cancelled``."""

    @abstractmethod
    def native_close(self, *, account_ref: str, venue_position_id: str) -> NativeClose | None:
        """How the venue closed this position by itself (its take-profit or stop-loss was
        reached, or it liquidated it); None while it has not."""

    @abstractmethod
    def revert_reason(self, error: Exception) -> str | None:
        """The venue's name for the revert an error of a send quotes (an estimate that
        reverted), if any."""


class PriceStreaming(ABC):
    """A venue that can push its quotes over a live connection instead of being polled.

    Optional: a ``Venue`` that also subclasses this is streamed by the price feed; every
    venue still answers ``prices()``, which is what callers fall back to while a stream is down.
    """

    @abstractmethod
    def stream_prices(
        self,
        *,
        symbols: list[str],
        on_quote: Callable[[Quote], None],
        stop: threading.Event,
        on_live: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        """Push quotes of ``symbols`` to ``on_quote`` until ``stop`` is set or the adapter is
        closed, then return. Blocks: run it in a thread of its own; callbacks run in that thread.

        A quote goes out when a symbol's best bid or ask changes, and again every few seconds
        while nothing changes (stamped now: the connection is up, so the price is current).
        Symbols the venue does not list are left out. Never raises for the venue's trouble: a
        refused or dropped connection is logged and reopened with backoff, every subscription
        made again. ``on_live`` is told, whenever it changes, which symbols have live quotes
        (none while disconnected), so the caller can price the others another way.
        """


class VenueAccounts(ABC):
    """A venue where each user trades from an account of their own that the platform opens
    and funds (Lighter's sub-accounts under the platform's master account).

    Optional: trading calls ``ensure_account`` before a user's first order there (what
    ``Venue.account_ref`` answers needs it) and funds the account for every opening order.
    """

    @abstractmethod
    def ensure_account(self, *, user_id: str) -> str:
        """The user's ``account_ref``, the account opened at the venue on first use. Idempotent."""

    @abstractmethod
    def transfer_to_account(self, *, account_ref: str, amount: Decimal) -> str:
        """Move ``amount`` USDC from the platform's account to ``account_ref``; returns the
        venue's transaction id. The ledger entry that mirrors it is the caller's."""


class OrderFollowing(ABC):
    """A venue that pushes what becomes of an account's orders over a live connection.

    Optional: trading follows the accounts with orders pending there (``manage.py
    venuefollow``); polling by client id (``get_order``) stays the fallback.
    """

    @abstractmethod
    def follow_orders(
        self,
        *,
        account_ref: str,
        client_order_ids: Callable[[], Iterable[str]],
        on_order: Callable[[VenueOrder], None],
        stop: threading.Event,
        on_live: Callable[[bool], None] | None = None,
    ) -> None:
        """Push each change of the orders ``client_order_ids()`` names (read again at every
        batch) to ``on_order`` until ``stop`` is set or the adapter is closed. Blocks: run it
        in a thread of its own. Never raises for the venue's trouble: it reconnects, and
        polls while the connection is down."""


class NativeStops(ABC):
    """A venue that holds stop-loss and take-profit orders of a position itself.

    Optional: trading places the trader's stop-loss and take-profit there
    (``execution_mode`` native) instead of watching prices for them; a stop that fired at the
    venue reaches trading like any order, by its client id. Trailing stops stay ours.
    """

    @abstractmethod
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
        """A reduce-only trigger order (``kind`` "stop_loss" or "take_profit") for all of the
        position (or ``size``); cancelled with ``Venue.cancel_order`` by its ``venue_order_id``."""


# --- Swaps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SwapQuote:
    """A route from one token (and chain) to another, with the transaction that starts it.

    Amounts are in base units. Tokens and addresses are EIP-55; the chain's native coin is
    ``0x0000000000000000000000000000000000000000``. ``raw`` is the provider's answer as
    received, kept for the record.
    """

    provider_quote_id: str  # the step's "id"
    tool: str
    from_chain_id: int
    from_token: str  # EIP-55; 0x0000000000000000000000000000000000000000 for the native coin
    from_amount_raw: int
    to_chain_id: int
    to_token: str
    to_address: str
    to_amount_raw: int
    to_amount_min_raw: int
    slippage: Decimal  # a fraction: 0.005 = 0.5 %
    from_amount_usd: Decimal | None
    to_amount_usd: Decimal | None
    fee_costs_usd: Decimal
    gas_costs_usd: Decimal
    execution_duration_seconds: int | None
    transaction: EvmTransaction
    approval_address: str | None  # the ERC-20 spender to approve first; None for the native coin
    raw: dict[str, Any]


@dataclass(frozen=True)
class SwapStatus:
    """Where a swap stands. ``status`` is one of "not_found", "invalid", "pending", "done",
    "failed" (a value the provider adds later reads as "pending"); ``substatus`` is the
    provider's own detail (``WAIT_DESTINATION_TRANSACTION``, ``COMPLETED``, ``PARTIAL``,
    ``REFUNDED``, ``SLIPPAGE_EXCEEDED``, ...)."""

    status: str
    substatus: str | None
    substatus_message: str | None
    sending_tx_hash: str | None
    receiving_tx_hash: str | None
    received_amount_raw: int | None
    received_token: str | None  # EIP-55
    received_chain_id: int | None
    raw: dict[str, Any]


class SwapProvider(ProviderAdapter):
    """Converts any token on any chain into another (for us: USDC on Arbitrum), e.g. LI-FI."""

    kind = ProviderKind.SWAP

    @abstractmethod
    def quote(
        self,
        *,
        from_chain_id: int,
        from_token: str,
        from_amount_raw: int,
        from_address: str,
        to_chain_id: int,
        to_token: str,
        to_address: str,
        slippage: Decimal,
    ) -> SwapQuote:
        """The best route for ``from_amount_raw`` of ``from_token`` sent by ``from_address``,
        paid out to ``to_address``, with the transaction that starts it.

        ``slippage`` is a fraction (0.005 = 0.5 %); ``to_amount_min_raw`` is what the route
        guarantees. Quotes expire quickly: quote again right before signing. Raises
        ProviderError: not retryable when there is no route (LI-FI code 1002) or the request
        is refused, retryable for rate limits (with ``retry_after``), timeouts and 5xx.
        """

    @abstractmethod
    def status(self, *, tx_hash: str, from_chain_id: int, to_chain_id: int) -> SwapStatus:
        """Where the swap started by the source transaction ``tx_hash`` stands.

        A hash the provider does not know (yet) is status "not_found", not an error: the
        provider indexes transactions some time after they are mined. Raises ProviderError
        when the provider cannot answer.
        """
