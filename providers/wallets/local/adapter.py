"""The ``local`` wallet signer: keys made with eth-account, kept encrypted in our database.

It stands in for an MPC provider on machines with no Privy or Dynamic account (a fresh
checkout, the demo, the tests). The private key never leaves this module decrypted.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from eth_account import Account

from marqetfi.core import crypto
from providers.base import WalletInfo, WalletProvider
from providers.errors import ProviderError
from providers.models import LocalWalletKey


class LocalWalletProvider(WalletProvider):
    name = "local"

    def create_wallet(
        self, *, owner_ref: str, chain_type: str, idempotency_key: str, email: str | None = None
    ) -> WalletInfo:
        if chain_type != "ethereum":
            raise ProviderError(self.name, f"chain type {chain_type!r} is not supported", status_code=400)
        existing = LocalWalletKey.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            account = Account.create()
            try:
                with transaction.atomic():
                    existing = LocalWalletKey.objects.create(
                        idempotency_key=idempotency_key,
                        address=account.address,
                        encrypted_private_key=crypto.encrypt(account.key.hex()),
                    )
            except IntegrityError:  # a concurrent call with the same key won
                existing = LocalWalletKey.objects.get(idempotency_key=idempotency_key)
        return self._info(existing)

    def get_wallet(self, *, provider_wallet_id: str) -> WalletInfo:
        key = LocalWalletKey.objects.filter(pk=provider_wallet_id).first()
        if key is None:
            raise ProviderError(self.name, "no such wallet", status_code=404)
        return self._info(key)

    def _info(self, key: LocalWalletKey) -> WalletInfo:
        return WalletInfo(
            provider=self.name, provider_wallet_id=str(key.pk), address=key.address, chain_type="ethereum"
        )
