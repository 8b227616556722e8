"""Reads of the ledger that several places share."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from accounts.models import User
from ledger.models import AMOUNT_QUANTUM, LedgerAccount

_ZERO = Decimal(0).quantize(AMOUNT_QUANTUM)


@dataclass(frozen=True)
class UserBalances:
    available: Decimal
    margin: Decimal


def user_balances(*, user: User) -> UserBalances:
    """The user's USDC as the ledger has it now; zero for a user who has no accounts yet."""
    balances = dict(
        LedgerAccount.objects.filter(user=user, kind__in=LedgerAccount.USER_KINDS).values_list(
            "kind", "balance"
        )
    )
    return UserBalances(
        available=balances.get(LedgerAccount.Kind.AVAILABLE, _ZERO),
        margin=balances.get(LedgerAccount.Kind.MARGIN, _ZERO),
    )


def platform_balances() -> dict[str, Decimal]:
    """The balance of each platform account, by kind (``venue:<key>`` for a venue's): a
    sharded kind (``fees``, ``realized_pnl``; see ``ledger.services``) is the sum of its shards."""
    rows = (
        LedgerAccount.objects.filter(user__isnull=True)
        .values_list("kind", "name")
        .annotate(total=Sum("balance"))
        .order_by("kind", "name")
    )
    balances: dict[str, Decimal] = {}
    for kind, name, total in rows:
        key = f"{kind}:{name}" if kind == LedgerAccount.Kind.VENUE else kind
        balances[key] = balances.get(key, _ZERO) + total
    return balances
