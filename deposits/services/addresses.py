"""Where a user sends funds: their MPC wallet's address, on every chain that takes deposits."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from accounts.models import User, Wallet, WalletKind
from accounts.services.wallets import wallet_mpc_create
from providers import registry
from providers.base import ChainSpec
from providers.errors import ProviderNotConfigured


@dataclass(frozen=True)
class DepositAddress:
    wallet: Wallet
    chains: list[ChainSpec]


def deposit_wallet(*, user: User) -> Wallet | None:
    """The wallet deposits go to: the user's first Ethereum MPC wallet."""
    return (
        Wallet.objects.filter(user=user, kind=WalletKind.MPC, chain_type="ethereum")
        .order_by("created_at")
        .first()
    )


def deposit_address_get(*, user: User) -> DepositAddress:
    """The user's deposit wallet (created with the default MPC provider if they have none) and
    the chains accepting deposits, each with its tokens; EVM chains share the one address."""
    wallet = deposit_wallet(user=user)
    if wallet is None:
        wallet, _ = wallet_mpc_create(user=user, provider=settings.MPC_WALLET_DEFAULT_PROVIDER)
    chains = []
    for chain_id in registry.configured_chain_ids():
        try:
            spec = registry.chain_spec(chain_id)
        except ProviderNotConfigured:
            continue
        if spec.deposits_enabled:
            chains.append(spec)
    return DepositAddress(wallet=wallet, chains=chains)
