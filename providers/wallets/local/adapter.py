"""The ``local`` wallet signer: keys made with eth-account, kept encrypted in our database.

It stands in for an MPC provider on machines with no Privy or Dynamic account (a fresh
checkout, the demo, the tests). The private key never leaves this module decrypted: it is
decrypted for one signature at a time and is never logged, returned or put in an error.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError
from django.db import transaction as db_transaction
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address

from marqetfi.core import crypto
from providers import registry
from providers.base import EvmTransaction, SentTransaction, WalletInfo, WalletProvider
from providers.errors import ProviderError
from providers.models import LocalWalletKey

_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class LocalWalletProvider(WalletProvider):
    name = "local"

    def health_check(self) -> None:
        """The signer has no remote: it is up when its table answers."""
        try:
            LocalWalletKey.objects.exists()
        except DatabaseError as exc:
            raise ProviderError(self.name, "the wallet key table cannot be read", retryable=True) from exc

    def create_wallet(
        self, *, owner_ref: str, chain_type: str, idempotency_key: str, email: str | None = None
    ) -> WalletInfo:
        if chain_type != "ethereum":
            raise ProviderError(self.name, f"chain type {chain_type!r} is not supported", status_code=400)
        existing = LocalWalletKey.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            account = Account.create()
            try:
                with db_transaction.atomic():
                    existing = LocalWalletKey.objects.create(
                        idempotency_key=idempotency_key,
                        address=account.address,
                        encrypted_private_key=crypto.encrypt(account.key.hex()),
                    )
            except IntegrityError:  # a concurrent call with the same key won
                existing = LocalWalletKey.objects.get(idempotency_key=idempotency_key)
        return self._info(existing)

    def get_wallet(self, *, provider_wallet_id: str) -> WalletInfo:
        return self._info(self._key(provider_wallet_id))

    def sign_message(self, *, provider_wallet_id: str, message: str) -> str:
        account = self._account(self._key(provider_wallet_id))
        signed = account.sign_message(encode_defunct(text=message))
        return "0x" + bytes(signed.signature).hex()

    def sign_and_send_transaction(
        self, *, provider_wallet_id: str, transaction: EvmTransaction
    ) -> SentTransaction:
        """Fill nonce, gas and fees from the chain's RPC, sign here, broadcast the raw transaction.

        The wallet's row stays locked (``SELECT ... FOR UPDATE``, where the database has it)
        from reading the pending nonce to the broadcast, so two sends from one wallet in
        different processes cannot take the same nonce.
        """
        from providers.chains.evm.client import EvmChainClient  # web3 loads only when sending

        _check_transaction(self.name, transaction)
        client = registry.chain_client(transaction.chain_id)
        if not isinstance(client, EvmChainClient):
            raise ProviderError(self.name, f"chain {transaction.chain_id} cannot take raw transactions")
        with db_transaction.atomic():
            key = self._key(provider_wallet_id, lock=True)
            account = self._account(key)
            unsigned = client.fill_transaction(from_address=key.address, transaction=transaction)
            signed = account.sign_transaction(unsigned)
            tx_hash = client.send_raw_transaction(bytes(signed.raw_transaction))
        return SentTransaction(chain_id=transaction.chain_id, tx_hash=tx_hash)

    def _key(self, provider_wallet_id: str, *, lock: bool = False) -> LocalWalletKey:
        keys = LocalWalletKey.objects.select_for_update() if lock else LocalWalletKey.objects.all()
        try:
            key = keys.filter(pk=provider_wallet_id).first()
        except (ValueError, ValidationError):  # not a UUID: no wallet of ours has that id
            key = None
        if key is None:
            raise ProviderError(self.name, "no such wallet", status_code=404)
        return key

    def _account(self, key: LocalWalletKey) -> LocalAccount:
        """The wallet's signer; its address must be the stored one (a swapped ciphertext is refused)."""
        try:
            account: LocalAccount = Account.from_key(crypto.decrypt(key.encrypted_private_key))
        except crypto.DecryptionError as exc:
            raise ProviderError(
                self.name, f"the key of wallet {key.pk} cannot be decrypted with FIELD_ENCRYPTION_KEYS"
            ) from exc
        if account.address != key.address:
            raise ProviderError(self.name, f"the stored key of wallet {key.pk} is not the key of its address")
        return account

    def _info(self, key: LocalWalletKey) -> WalletInfo:
        return WalletInfo(
            provider=self.name, provider_wallet_id=str(key.pk), address=key.address, chain_type="ethereum"
        )


def _check_transaction(provider: str, tx: EvmTransaction) -> None:
    """Refuse, as a 400 like a remote signer would, what the chain client takes for a bug."""
    problem = None
    if not is_address(tx.to):
        problem = f"not an EVM address: {tx.to!r}"
    elif tx.value < 0:
        problem = "value cannot be negative"
    elif tx.gas_limit is not None and tx.gas_limit <= 0:
        problem = "gas_limit must be positive"
    elif not _HEX_DATA.fullmatch(tx.data):
        problem = "data must be 0x-prefixed hex bytes"
    if problem is not None:
        raise ProviderError(provider, problem, status_code=400)
