"""MPC wallets created through a wallet provider, and external wallets proven by signature."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from accounts import errors
from accounts.models import AuthIdentity, AuthMethod, User, Wallet, WalletKind
from accounts.selectors import user_email_verified
from accounts.verification.siwe import siwe_verify
from marqetfi.core.events import publish
from providers import registry
from providers.base import TokenBalance
from providers.breaker import call_provider
from providers.errors import ProviderError

logger = logging.getLogger(__name__)

# Dynamic creates embedded wallets for a user it identifies by email.
PROVIDERS_KEYED_BY_EMAIL = frozenset({"dynamic"})


def _wallet_linked(wallet: Wallet) -> None:
    publish(
        user_id=wallet.user_id,
        type="account.wallet_linked",
        data={
            "wallet_id": str(wallet.pk),
            "address": wallet.address,
            "kind": wallet.kind,
            "provider": wallet.provider,
        },
    )


def _mpc_wallet(user: User, provider: str, chain_type: str) -> Wallet | None:
    return Wallet.objects.filter(
        user=user, kind=WalletKind.MPC, provider=provider, chain_type=chain_type
    ).first()


def wallet_mpc_create(*, user: User, provider: str, chain_type: str = "ethereum") -> tuple[Wallet, bool]:
    """The user's MPC wallet at ``provider`` for ``chain_type``, created on the first call.

    The provider is called outside any transaction (it may be slow) with an idempotency key
    derived from user, provider and chain: a retry, or a concurrent duplicate request, gets
    the same wallet from the provider, and the unique constraint keeps one row here.
    """
    existing = _mpc_wallet(user, provider, chain_type)
    if existing is not None:
        return existing, False
    if provider not in registry.wallet_provider_names():
        raise errors.UnknownWalletProvider(
            details={"provider": provider, "known": registry.wallet_provider_names()}
        )
    verified_email = user.email if user.email and user_email_verified(user=user) else None
    if provider in PROVIDERS_KEYED_BY_EMAIL and verified_email is None:
        raise errors.VerifiedEmailRequired(details={"provider": provider})
    try:
        adapter = registry.wallet_provider(provider)
        info = call_provider(
            provider,
            adapter.create_wallet,
            owner_ref=str(user.pk),
            chain_type=chain_type,
            idempotency_key=f"marqetfi-{user.pk}-{provider}-{chain_type}",
            email=verified_email,
        )
    except registry.ProviderNotConfigured as exc:
        raise errors.WalletProviderUnavailable(
            "This wallet provider is not configured.", details={"provider": provider}
        ) from exc
    except ProviderError as exc:
        logger.warning("Wallet provider %s refused to create a wallet: %s", provider, exc.message)
        details = {"provider": provider, "provider_status": exc.status_code}
        if exc.retryable:
            raise errors.WalletProviderUnavailable(details=details) from exc
        raise errors.WalletProviderRejected(details=details) from exc
    try:
        with transaction.atomic():
            wallet = Wallet.objects.create(
                user=user,
                kind=WalletKind.MPC,
                provider=provider,
                chain_type=chain_type,
                address=info.address,
                provider_wallet_id=info.provider_wallet_id,
            )
            _wallet_linked(wallet)
    except IntegrityError:
        raced = _mpc_wallet(user, provider, chain_type)
        if raced is None:
            raise errors.WalletInUse() from None
        return raced, False
    return wallet, True


@transaction.atomic
def wallet_external_link(*, user: User, message: str, signature: str) -> tuple[Wallet, bool]:
    """Link an address the user proves they control with a signed EIP-4361 message."""
    verified = siwe_verify(message=message, signature=signature)
    address = verified.subject
    existing = Wallet.objects.filter(address__iexact=address).first()
    if existing is not None:
        if existing.user_id != user.pk:
            raise errors.WalletInUse()
        return existing, False
    if AuthIdentity.objects.filter(method=AuthMethod.SIWE, subject=address).exclude(user=user).exists():
        raise errors.WalletInUse()
    wallet = Wallet.objects.create(
        user=user, kind=WalletKind.EXTERNAL, provider="external", chain_type="ethereum", address=address
    )
    _wallet_linked(wallet)
    return wallet, True


@dataclass(frozen=True)
class ChainBalances:
    chain_id: int
    name: str
    balances: list[TokenBalance]
    error: str | None = None


def wallet_balances(*, wallet: Wallet) -> list[ChainBalances]:
    """Native and token balances on every configured chain; a chain that fails reports its
    error without hiding the others."""
    results = []
    for chain_id in registry.configured_chain_ids():
        name = registry.chain_name(chain_id)
        try:
            client = registry.chain_client(chain_id)
            balances = client.balances(address=wallet.address, tokens=registry.chain_tokens(chain_id))
            results.append(ChainBalances(chain_id, name, balances))
        except ProviderError as exc:
            logger.warning("Balance read failed on chain %s: %s", chain_id, exc.message)
            results.append(ChainBalances(chain_id, name, [], "chain_unavailable"))
    return results
