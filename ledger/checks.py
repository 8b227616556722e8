"""The ledger's invariants, checked against the database (``manage.py check_ledger``)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db.models import Count, DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.module_loading import import_string

from ledger.models import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    AMOUNT_QUANTUM,
    LedgerAccount,
    LedgerTransaction,
)

_ZERO = Value(Decimal(0), output_field=DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES))
# Amounts are whole multiples of 1e-6, so any real difference is at least that; comparing with
# half of it keeps the float arithmetic of the SQLite development database from raising false alarms.
_TOLERANCE = AMOUNT_QUANTUM / 2


def _nonzero(field: str) -> Q:
    return Q(**{f"{field}__gt": _TOLERANCE}) | Q(**{f"{field}__lt": -_TOLERANCE})


def _sum(field: str) -> Coalesce:
    return Coalesce(Sum(field), _ZERO, output_field=_ZERO.output_field)


def _money(value: Decimal) -> str:
    return f"{value.quantize(AMOUNT_QUANTUM):f}"


def ledger_check() -> list[str]:
    """Problems found in the ledger, one sentence each; an empty list means the books are sound.

    Checked: every transaction has two or more entries summing to zero; the balances of all
    accounts sum to zero (per currency); each account's stored balance equals the sum of its
    entries; no user account is below zero; and every check in ``settings.LEDGER_CHECKS``.
    """
    problems: list[str] = []

    transactions = (
        LedgerTransaction.objects.annotate(legs=Count("entries"), total=_sum("entries__amount"))
        .filter(Q(legs__lt=2) | _nonzero("total"))
        .order_by("created_at", "pk")
    )
    for txn in transactions:
        if txn.legs < 2:
            problems.append(f"transaction {txn.pk} ({txn.kind}) has {txn.legs} entries, fewer than two")
        else:
            problems.append(f"transaction {txn.pk} ({txn.kind}) sums to {_money(txn.total)}, not zero")

    totals = LedgerAccount.objects.values("currency").annotate(total=_sum("balance")).order_by("currency")
    for row in totals:
        if row["total"].quantize(AMOUNT_QUANTUM) != 0:
            problems.append(
                f"the balances of all {row['currency']} accounts sum to {_money(row['total'])}, not zero"
            )

    drifted = (
        LedgerAccount.objects.select_related("user")
        .annotate(entries_total=_sum("entries__amount"))
        .annotate(drift=F("balance") - F("entries_total"))
        .filter(_nonzero("drift"))
        .order_by("pk")
    )
    for account in drifted:
        problems.append(
            f"account {account.pk} ({account}) has a balance of {_money(account.balance)} "
            f"but its entries sum to {_money(account.entries_total)}"
        )

    negative = (
        LedgerAccount.objects.filter(user__isnull=False)
        .select_related("user")
        .annotate(entries_total=_sum("entries__amount"))
        .filter(Q(balance__lt=-_TOLERANCE) | Q(entries_total__lt=-_TOLERANCE))
        .order_by("pk")
    )
    for overdrawn in negative:
        problems.append(
            f"user account {overdrawn.pk} ({overdrawn}) is below zero: balance {_money(overdrawn.balance)}, "
            f"entries {_money(overdrawn.entries_total)}"
        )
    # Apps that post to the ledger check their own side of it (deposits: each credited once).
    for path in settings.LEDGER_CHECKS:
        problems.extend(import_string(path)())
    return problems
