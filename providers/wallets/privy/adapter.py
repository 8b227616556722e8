"""Privy server wallets behind our ``WalletProvider`` interface.

Wallets are created without a Privy owner: ``owner_ref`` is our user id, not a Privy user
(``did:privy:...``), so the wallet belongs to the app and is used with the app's credentials.

Signing goes through ``POST /v1/wallets/{id}/rpc``. A ``personal_sign`` has no side effect,
so it is retried like a read. An ``eth_sendTransaction`` is retried only because each call
sends its own fresh ``privy-idempotency-key``: Privy executes a key once and replays the
stored answer to the retries of that call. A new call is a new key, which is why a send
whose outcome stays unknown ends as a non-retryable error.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from eth_utils import is_address, to_checksum_address

from providers.base import EvmTransaction, SentTransaction, WalletInfo, WalletProvider
from providers.errors import ProviderError
from providers.wallets.privy.client import DEFAULT_BASE_URL, PrivyClient

# Privy's documented limit for privy-idempotency-key.
IDEMPOTENCY_KEY_MAX_LENGTH = 256
SUPPORTED_CHAIN_TYPES = frozenset({"ethereum"})
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


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

    def health_check(self) -> None:
        """``GET /v1/wallets?limit=1``: authenticated, read-only and small.

        One attempt, no retries: the caller (the circuit breaker's probe) decides what a
        failure means. A 401 here means the app id or secret is wrong.
        """
        answer = self._client.list_wallets(limit=1, retry=False)
        if not isinstance(answer, dict):
            raise ProviderError(self.name, "the wallet list answer is not a JSON object", response=answer)

    def sign_message(self, *, provider_wallet_id: str, message: str) -> str:
        """``personal_sign`` of the UTF-8 ``message``; the 65-byte signature as lowercase 0x-hex."""
        if not provider_wallet_id:
            raise ProviderError(self.name, "no such wallet", status_code=404)
        body = {"method": "personal_sign", "params": {"message": message, "encoding": "utf-8"}}
        answer = self._client.rpc(provider_wallet_id, body, retry=True)
        signature = _data(answer).get("signature")
        if not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
            raise ProviderError(
                self.name, "the personal_sign answer holds no 65-byte signature", response=answer
            )
        return signature.lower()

    def sign_and_send_transaction(
        self, *, provider_wallet_id: str, transaction: EvmTransaction
    ) -> SentTransaction:
        """``eth_sendTransaction`` on ``eip155:<chain id>``; Privy fills nonce, gas and fees.

        Retries within this call reuse its idempotency key. If the outcome is still unknown at
        the end (timeout, connection lost, 5xx), the error is non-retryable: the transaction
        may have been broadcast, and a new call would be a second transaction.
        """
        if not provider_wallet_id:
            raise ProviderError(self.name, "no such wallet", status_code=404)
        body = {
            "method": "eth_sendTransaction",
            "caip2": f"eip155:{transaction.chain_id}",
            "chain_type": "ethereum",
            "params": {"transaction": self._transaction_fields(transaction)},
        }
        try:
            answer = self._client.rpc(provider_wallet_id, body, idempotency_key=str(uuid.uuid4()), retry=True)
        except ProviderError as exc:
            if exc.status_code is None or exc.status_code >= 500:
                raise ProviderError(
                    self.name,
                    f"{exc.message}; the transaction may have been sent: "
                    "check the wallet's transactions before sending again",
                    status_code=exc.status_code,
                    response=exc.response,
                ) from exc
            raise
        tx_hash = _data(answer).get("hash")
        if not isinstance(tx_hash, str) or not _TX_HASH.fullmatch(tx_hash):
            raise ProviderError(
                self.name,
                "the eth_sendTransaction answer holds no hash (the transaction may have been sent)",
                response=answer,
            )
        return SentTransaction(chain_id=transaction.chain_id, tx_hash=tx_hash.lower())

    def close(self) -> None:
        """Release the pooled HTTP connections; the instance is unusable afterwards."""
        self._client.close()

    def _transaction_fields(self, transaction: EvmTransaction) -> dict[str, Any]:
        """Privy's snake_case transaction: quantities as 0x-hex, ``gas_limit`` only when given."""
        problem = None
        if not is_address(transaction.to):
            problem = f"not an EVM address: {transaction.to!r}"
        elif transaction.value < 0:
            problem = "value cannot be negative"
        elif transaction.gas_limit is not None and transaction.gas_limit <= 0:
            problem = "gas_limit must be positive"
        elif not _HEX_DATA.fullmatch(transaction.data):
            problem = "data must be 0x-prefixed hex bytes"
        if problem is not None:
            raise ProviderError(self.name, problem, status_code=400)
        fields: dict[str, Any] = {
            "to": to_checksum_address(transaction.to),
            "value": hex(transaction.value),
            "data": transaction.data,
        }
        if transaction.gas_limit is not None:
            fields["gas_limit"] = hex(transaction.gas_limit)
        return fields

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


def _data(answer: Any) -> dict[str, Any]:
    """The ``data`` object of an RPC answer (``{"method": ..., "data": {...}}``), else empty."""
    data = answer.get("data") if isinstance(answer, dict) else None
    return data if isinstance(data, dict) else {}
