"""The venue side of a user: which account at a venue a user's orders and positions belong to,
opened and funded there when the venue gives every user an account of their own.

Per-user venue accounts (``providers.base.VenueAccounts``, Lighter's sub-accounts): before an
opening order goes to such a venue, ``venue_account_prepare`` makes sure the user's account
exists (``ensure_account``, idempotent) and moves the order's collateral and fee into it from
the platform's account there (``transfer_to_account``). The transfer is the platform's own
money moving between two of its venue accounts, so it is mirrored in the ledger by a
platform-only transaction (kind ``venue_account_fund``, reference ``order:<id>``): the
platform's venue account (``venue`` / ``lighter``) gives, the user's venue account
(``venue`` / ``lighter:<account>``) receives; every user balance is untouched, and
``check_ledger`` keeps it exact like any transaction. At most one transfer per order: the
order row is locked while the transfer is sent and recorded, and an order already funded is
never funded again. Closes do not sweep money back: what the venue pays out stays in the
user's account there and backs their next positions (a sweep is not built yet).

Venues traded from the user's own wallet (``providers.base.WalletTradedVenue``, Ostium): the
wallet is the user's account there (``account_ref`` is its address) and spends its own USDC
on chain, while our ledger locks the same collateral in the user's margin. Deposits never
reach that wallet (they are delivered to the platform's collection address), so before an
opening order ``venue_wallet_fund`` sends the wallet, from the chain's gas station (the
platform's hot wallet there, ``ChainDirectory.token_transfer``), the shortfall of the venue's
collateral token: ``max(0, collateral - what the wallet holds)``. Ostium takes its opening
fee out of the collateral on chain, so the collateral is all the wallet needs; what earlier
closes paid back into the wallet stays there (no sweep, as at Lighter) and backs the next
trades, so only the shortfall is sent. The transfer must be mined and succeed before the
trade is sent, and is mirrored like a Lighter transfer: ``venue_account_fund``, reference
``order:<id>``, ``venue`` / ``ostium`` gives exactly what was sent, ``venue`` /
``ostium:<address>`` receives it, user balances untouched, at most once per order. A chain
without a gas station, or a transfer that fails or reverts, rejects the order
(``wallet_underfunded``, collateral back) with nothing recorded. Gas top-ups (ETH) are not
in the ledger, which holds USDC only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User, Wallet
from ledger.models import LedgerAccount, LedgerTransaction
from ledger.services import ledger_transaction_post, platform_account
from providers import registry
from providers.base import VenueAccounts, WalletTradedVenue
from providers.breaker import call_provider
from providers.errors import ProviderError
from trading.models import Order
from trading.services.wallet_trades import WalletNotReady, transaction_mined, wallet_token_held

logger = logging.getLogger(__name__)

POLL_FIRST = timedelta(seconds=1)
POLL_MAX = timedelta(minutes=1)
VENUE_ACCOUNT_FUND = "venue_account_fund"


def venue_account_ref(*, user: User, provider: str) -> str:
    """The account ``user`` trades from at the venue ``provider``, as the venue maps it (the
    wallets are read only by a venue that trades from the user's own wallet)."""
    return registry.venue(provider).account_ref(
        user_id=str(user.pk), wallet_addresses=_wallet_addresses(user)
    )


def _wallet_addresses(user: User) -> Iterator[str]:
    """The user's wallet addresses, oldest first, queried only if a venue reads them (building
    the query costs CPU on every order of a venue that does not)."""
    yield from user.wallets.order_by("created_at").values_list("address", flat=True)


def venue_account_name(*, provider: str, account_ref: str) -> str:
    """The ledger name of a user's own account at a venue: ``<provider>:<account_ref>``."""
    return f"{provider}:{account_ref}"


def venue_account_prepare(*, order: Order, provider: str) -> str:
    """The ``account_ref`` ``order`` trades from at ``provider``, opened and funded first at a
    venue with per-user accounts (see the module); at any other venue, ``venue_account_ref``.

    Raises the venue's ``ProviderError`` (a late account creation is retryable): the caller
    treats it as the venue not taking the order. Nothing is recorded for a transfer that
    failed; a transfer whose answer was lost is not retried for this order.
    """
    venue = registry.venue(provider)
    if not isinstance(venue, VenueAccounts):
        return venue_account_ref(user=order.user, provider=provider)
    account_ref = call_provider(provider, venue.ensure_account, user_id=str(order.user_id))
    amount = order.collateral + order.fee_reserved
    if not account_ref or order.purpose != Order.Purpose.OPEN or amount <= 0:
        return account_ref
    with transaction.atomic():
        if _venue_funded(order):
            return account_ref
        tx_hash = call_provider(provider, venue.transfer_to_account, account_ref=account_ref, amount=amount)
        _venue_fund_record(
            order=order,
            provider=provider,
            account_ref=account_ref,
            amount=amount,
            memo=f"{provider} transfer {tx_hash} to account {account_ref}",
        )
    logger.info(
        "order %s: %s USDC sent to %s account %s (%s)",
        order.pk,
        amount,
        provider,
        account_ref,
        tx_hash,
        extra={"order_id": str(order.pk), "provider": provider},
    )
    return account_ref


def venue_wallet_fund(
    *, order: Order, provider: str, venue: WalletTradedVenue, wallet: Wallet, account_ref: str
) -> Decimal:
    """Send ``wallet`` (the user's account ``account_ref`` at a venue traded from the wallet)
    the collateral ``order`` needs that it does not hold yet, from the chain's gas station,
    and record it (see the module); what was sent (0 when nothing was).

    Raises ``WalletNotReady`` (``wallet_underfunded``) when the chain has no gas station or
    the transfer is refused, fails or is not mined successfully in time; nothing is recorded
    then. A transfer sent but not seen mined in time is logged with its hash: if it is mined
    later, the wallet holds it unrecorded and the next order sends that much less.
    """
    needed = order.collateral
    if order.purpose != Order.Purpose.OPEN or needed <= 0:
        return Decimal(0)
    chain_id = venue.wallet_chain_id
    token = venue.collateral_token()
    needed_raw = math.ceil(needed.scaleb(token.decimals))
    with transaction.atomic():
        if _venue_funded(order):
            return Decimal(0)
        held_raw = wallet_token_held(chain_id=chain_id, address=wallet.address, token=token)
        shortfall_raw = needed_raw - held_raw
        if shortfall_raw <= 0:
            return Decimal(0)
        amount = Decimal(shortfall_raw).scaleb(-token.decimals)
        details = {
            "code": "wallet_underfunded",
            "held": str(Decimal(held_raw).scaleb(-token.decimals)),
            "needed": str(needed),
        }
        try:
            tx_hash = registry.chain_directory().token_transfer(
                chain_id=chain_id, token=token.address, to_address=wallet.address, amount_raw=shortfall_raw
            )
        except ProviderError as exc:
            raise WalletNotReady(
                f"The platform could not send the wallet {amount} {token.symbol}: {exc.message}",
                details=details,
            ) from exc
        if tx_hash is None:
            raise WalletNotReady(
                f"The wallet lacks {amount} {token.symbol} and chain {chain_id} has no gas station "
                "to send it.",
                details=details,
            )
        if not transaction_mined(chain_id, tx_hash):
            logger.warning(
                "order %s: %s %s sent to wallet %s (%s) not mined successfully in time",
                order.pk,
                amount,
                token.symbol,
                wallet.address,
                tx_hash,
                extra={"order_id": str(order.pk), "provider": provider},
            )
            raise WalletNotReady(
                f"The transfer of {amount} {token.symbol} to the wallet was not mined or reverted.",
                details={**details, "tx_hash": tx_hash},
            )
        _venue_fund_record(
            order=order,
            provider=provider,
            account_ref=account_ref,
            amount=amount,
            memo=f"{token.symbol} transfer {tx_hash} to wallet {wallet.address}",
        )
    logger.info(
        "order %s: %s %s sent to %s wallet %s (%s)",
        order.pk,
        amount,
        token.symbol,
        provider,
        wallet.address,
        tx_hash,
        extra={"order_id": str(order.pk), "provider": provider},
    )
    return amount


def _venue_funded(order: Order) -> bool:
    """Whether ``order`` has been funded at its venue already, its row locked (inside the
    caller's transaction) so that two executions of one order never both fund it."""
    Order.objects.select_for_update(no_key=True).filter(pk=order.pk).first()
    return LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND, reference=f"order:{order.pk}").exists()


def _venue_fund_record(*, order: Order, provider: str, account_ref: str, amount: Decimal, memo: str) -> None:
    """The ledger's mirror of the platform's ``amount`` sent to a user's account at
    ``provider``: from the platform's venue account to the user's, user balances untouched."""
    ledger_transaction_post(
        kind=VENUE_ACCOUNT_FUND,
        legs=[
            (platform_account(kind=LedgerAccount.Kind.VENUE, name=provider), -amount),
            (
                platform_account(
                    kind=LedgerAccount.Kind.VENUE,
                    name=venue_account_name(provider=provider, account_ref=account_ref),
                ),
                amount,
            ),
        ],
        reference=f"order:{order.pk}",
        memo=memo,
    )


def venue_account_funded(*, provider: str, account_ref: str) -> Decimal:
    """What the platform has sent to a user's account at ``provider`` (the ledger's view)."""
    account = LedgerAccount.objects.filter(
        user__isnull=True,
        kind=LedgerAccount.Kind.VENUE,
        name=venue_account_name(provider=provider, account_ref=account_ref),
    ).first()
    return account.balance if account is not None else Decimal(0)


def poll_schedule(order: Order) -> None:
    """An order pending at its venue: when to ask about it next, backing off (1 s, 2 s, 4 s ...
    up to a minute) with each look-up that finds it still pending. The caller saves
    ``next_poll_at`` and ``poll_attempts``."""
    delay = min(POLL_FIRST * 2**order.poll_attempts, POLL_MAX)
    order.next_poll_at = timezone.now() + delay
    order.poll_attempts += 1
