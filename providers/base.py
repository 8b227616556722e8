"""The interfaces every external system sits behind: one small ABC per capability.

Methods return frozen dataclasses of ours (Decimal amounts, EIP-55 addresses), never
vendor JSON or SDK objects. Failures raise ``providers.errors.ProviderError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar


@dataclass(frozen=True)
class WalletInfo:
    """A wallet as a wallet provider holds it."""

    provider: str
    provider_wallet_id: str
    address: str  # EIP-55 checksummed
    chain_type: str  # "ethereum"


class WalletProvider(ABC):
    """Creates and looks up custodial (MPC / server) wallets for our users."""

    name: ClassVar[str]

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


class ChainClient(ABC):
    """Reads one EVM chain through JSON-RPC."""

    chain_id: int

    @abstractmethod
    def balances(self, *, address: str, tokens: list[TokenSpec]) -> list[TokenBalance]:
        """The native balance first, then one entry per token, in the order given."""

    @abstractmethod
    def is_valid_signature(self, *, address: str, message_hash: bytes, signature: bytes) -> bool:
        """EIP-1271: whether the contract at ``address`` accepts ``signature`` for ``message_hash``.

        False (not an error) when ``address`` has no code or the call reverts.
        """
