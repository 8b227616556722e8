"""The deposits' side of ``check_ledger`` (registered in ``settings.LEDGER_CHECKS``)."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Subquery

from deposits.models import Deposit, DepositStatus
from ledger.models import LedgerEntry, LedgerTransaction, TransactionKind


def deposits_ledger_check() -> list[str]:
    """Every completed deposit is credited exactly once, with the amount it shows; nothing else
    is credited; each credit is matched by one receipt; the clearing account holds nothing
    that was received but not credited."""
    problems: list[str] = []
    for deposit in Deposit.objects.filter(status=DepositStatus.COMPLETED, credit_transaction__isnull=True):
        problems.append(f"deposit {deposit.pk} is completed but has no ledger credit")
    for deposit in Deposit.objects.exclude(status=DepositStatus.COMPLETED).filter(
        credit_transaction__isnull=False
    ):
        problems.append(f"deposit {deposit.pk} is {deposit.status} but was credited")
    credits = (
        LedgerTransaction.objects.filter(kind=TransactionKind.DEPOSIT, reference__startswith="deposit:")
        .values("reference")
        .annotate(n=Count("id"))
    )
    for row in credits:
        if row["n"] > 1:
            problems.append(f"{row['reference']} was credited {row['n']} times")
    receipts = (
        LedgerTransaction.objects.filter(
            kind=TransactionKind.DEPOSIT_RECEIVE, reference__startswith="deposit:"
        )
        .values("reference")
        .annotate(n=Count("id"))
    )
    for row in receipts:
        if row["n"] > 1:
            problems.append(f"{row['reference']} was received {row['n']} times")
    # One query: each credited deposit beside what its ledger credit gave the deposit's user.
    user_credit = LedgerEntry.objects.filter(
        transaction_id=OuterRef("credit_transaction_id"), account__user=OuterRef("user_id")
    ).values("amount")[:1]
    credited_deposits = Deposit.objects.filter(credit_transaction__isnull=False).annotate(
        ledger_credit=Subquery(user_credit)
    )
    for deposit in credited_deposits:
        if deposit.ledger_credit is None or deposit.ledger_credit != deposit.credited_amount:
            problems.append(
                f"deposit {deposit.pk} shows {deposit.credited_amount} credited but its ledger credit "
                f"gave the user {deposit.ledger_credit if deposit.ledger_credit is not None else 'nothing'}"
            )
    received = set(
        LedgerTransaction.objects.filter(
            kind=TransactionKind.DEPOSIT_RECEIVE, reference__startswith="deposit:"
        ).values_list("reference", flat=True)
    )
    credited = set(
        LedgerTransaction.objects.filter(
            kind=TransactionKind.DEPOSIT, reference__startswith="deposit:"
        ).values_list("reference", flat=True)
    )
    # Only the deposits app's own references: older postings may use "deposit:<tx hash>".
    ours = {f"deposit:{pk}" for pk in Deposit.objects.values_list("pk", flat=True)}
    received &= ours
    credited &= ours
    for reference in sorted(received - credited):
        problems.append(f"{reference} was received into clearing but never credited")
    for reference in sorted(credited - received):
        problems.append(f"{reference} was credited without being received")
    return problems
