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
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from ledger.models import LedgerAccount, LedgerTransaction
from ledger.services import ledger_transaction_post, platform_account
from providers import registry
from providers.base import VenueAccounts
from providers.breaker import call_provider
from trading.models import Order

logger = logging.getLogger(__name__)

POLL_FIRST = timedelta(seconds=1)
POLL_MAX = timedelta(minutes=1)
VENUE_ACCOUNT_FUND = "venue_account_fund"


def venue_account_ref(*, user: User, provider: str) -> str:
    """The account ``user`` trades from at the venue ``provider``, as the venue maps it (the
    wallets are read only by a venue that trades from the user's own wallet)."""
    wallets = user.wallets.order_by("created_at").values_list("address", flat=True)
    return registry.venue(provider).account_ref(user_id=str(user.pk), wallet_addresses=wallets)


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
        Order.objects.select_for_update(no_key=True).filter(pk=order.pk).first()
        reference = f"order:{order.pk}"
        if LedgerTransaction.objects.filter(kind=VENUE_ACCOUNT_FUND, reference=reference).exists():
            return account_ref
        tx_hash = call_provider(provider, venue.transfer_to_account, account_ref=account_ref, amount=amount)
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
            reference=reference,
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
