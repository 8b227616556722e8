"""Privy server wallets behind our ``WalletProvider`` interface.

Wallets are created without a Privy owner: ``owner_ref`` is our user id, not a Privy user
(``did:privy:...``), so the wallet belongs to the app and is used with the app's credentials.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from providers.base import WalletInfo, WalletProvider
from providers.errors import ProviderError
from providers.wallets.privy.client import DEFAULT_BASE_URL, PrivyClient

# Privy's documented limit for privy-idempotency-key.
IDEMPOTENCY_KEY_MAX_LENGTH = 256
SUPPORTED_CHAIN_TYPES = frozenset({"ethereum"})


class PrivyWalletProvider(WalletProvider):
    name = "privy"

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        """``timeout`` bounds each HTTP attempt; retryable failures are tried ``max_attempts`` times."""
        self._client = PrivyClient(
            app_id=app_id,
            app_secret=app_secret,
            base_url=base_url,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
        )

    def create_wallet(
        self, *, owner_ref: str, chain_type: str, idempotency_key: str, email: str | None = None
    ) -> WalletInfo:
        """Create an app-owned Privy wallet; ``idempotency_key`` goes to Privy as is.

        Privy keeps idempotency keys for 24 hours: a retry after that creates a second wallet,
        so callers store the first answer rather than relying on replays. ``email`` is unused.
        """
        if chain_type not in SUPPORTED_CHAIN_TYPES:
            raise ProviderError(self.name, f"chain type {chain_type!r} is not supported", status_code=400)
        if not idempotency_key or len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise ProviderError(
                self.name,
                f"the idempotency key must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters",
                status_code=400,
            )
        answer = self._client.create_wallet(chain_type=chain_type, idempotency_key=idempotency_key)
        return self._wallet_info(answer)

    def get_wallet(self, *, provider_wallet_id: str) -> WalletInfo:
        if not provider_wallet_id:
            raise ProviderError(self.name, "no such wallet", status_code=404)
        return self._wallet_info(self._client.get_wallet(provider_wallet_id))

    def close(self) -> None:
        """Release the pooled HTTP connections; the instance is unusable afterwards."""
        self._client.close()

    def _wallet_info(self, wallet: Any) -> WalletInfo:
        """Map Privy's Wallet object; an answer without id or a valid EVM address is an error."""
        if not isinstance(wallet, dict):
            raise ProviderError(self.name, "the wallet answer is not a JSON object", response=wallet)
        wallet_id, address = wallet.get("id"), wallet.get("address")
        if not isinstance(wallet_id, str) or not wallet_id:
            raise ProviderError(self.name, "the wallet answer has no id", response=wallet)
        chain_type = wallet.get("chain_type", "ethereum")
        if chain_type not in SUPPORTED_CHAIN_TYPES:
            raise ProviderError(
                self.name, f"wallet {wallet_id} is on unsupported chain type {chain_type!r}", response=wallet
            )
        if not isinstance(address, str) or not address:
            raise ProviderError(self.name, f"wallet {wallet_id} has no address", response=wallet)
        try:
            checksummed = to_checksum_address(address)
        except ValueError as exc:
            raise ProviderError(
                self.name, f"wallet {wallet_id} has an invalid address {address!r}", response=wallet
            ) from exc
        return WalletInfo(
            provider=self.name, provider_wallet_id=wallet_id, address=checksummed, chain_type=chain_type
        )
