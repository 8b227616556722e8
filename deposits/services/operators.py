"""What operators do to deposits (admin and staff API): retry a failed swap, resolve by hand."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from deposits import errors
from deposits.models import Deposit, DepositStatus
from deposits.services import machine
from ledger.errors import InvalidAmount
from ledger.services import amount_check
from marqetfi.core.audit import audit_record


@transaction.atomic
def deposit_retry(*, deposit: Deposit, actor: Any, reason: str = "") -> Deposit:
    """Send a failed or refunded deposit back to quoting with a fresh attempt budget."""
    deposit = Deposit.objects.select_for_update().get(pk=deposit.pk)
    if deposit.status not in (DepositStatus.FAILED, DepositStatus.REFUNDED):
        raise errors.DepositNotRetryable(details={"status": deposit.status})
    if deposit.credit_transaction_id is not None:
        raise errors.DepositAlreadyFinal()
    before = deposit.status
    deposit.swap_attempts = 0
    deposit.failure_code = ""
    deposit.failure_reason = ""
    # A deposit that never confirmed goes back to confirming; one that did goes to quoting.
    to_status = (
        DepositStatus.QUOTING
        if deposit.confirmations >= deposit.confirmations_required
        else DepositStatus.CONFIRMING
    )
    machine.move(
        deposit,
        to_status,
        reason=f"retried by an operator{': ' + reason if reason else ''}",
        actor=actor,
        fields=("swap_attempts", "failure_code", "failure_reason"),
    )
    audit_record(
        actor=actor,
        action="deposit.retry",
        target_type="deposit",
        target_id=deposit.pk,
        changes={"status": {"before": before, "after": to_status}, "reason": reason},
    )
    return deposit


@transaction.atomic
def deposit_resolve(*, deposit: Deposit, actor: Any, reason: str, credit_amount: object = None) -> Deposit:
    """Close a deposit by hand: credit ``credit_amount`` USDC (funds recovered outside the
    machine) or close it as failed with nothing credited. Who and why are recorded."""
    reason = (reason or "").strip()
    problems: dict[str, list[str]] = {}
    if not reason:
        problems["reason"] = ["A reason is required."]
    amount: Decimal | None = None
    if credit_amount not in (None, ""):
        try:
            amount = amount_check(Decimal(str(credit_amount)))
            if amount < 0:
                problems["credit_amount"] = ["A credit is positive."]
        except (InvalidOperation, InvalidAmount) as exc:
            problems["credit_amount"] = [getattr(exc, "message", "Not a decimal amount.")]
    if problems:
        raise errors.ResolutionRejected(details=problems)
    deposit = Deposit.objects.select_for_update().get(pk=deposit.pk)
    if deposit.status == DepositStatus.COMPLETED or deposit.credit_transaction_id is not None:
        raise errors.DepositAlreadyFinal()
    before = deposit.status
    if amount is not None:
        machine.credit(deposit, amount=amount, reason=f"resolved by an operator: {reason}", actor=actor)
    else:
        deposit.failure_code = deposit.failure_code or "resolved_manually"
        deposit.failure_reason = f"Closed by an operator: {reason}"
        deposit.next_action_at = timezone.now()
        machine.move(
            deposit,
            DepositStatus.FAILED,
            reason=f"closed by an operator: {reason}",
            actor=actor,
            event="deposit.failed",
            fields=("failure_code", "failure_reason"),
        )
    audit_record(
        actor=actor,
        action="deposit.resolve",
        target_type="deposit",
        target_id=deposit.pk,
        changes={
            "status": {"before": before, "after": deposit.status},
            "credit_amount": f"{amount:f}" if amount is not None else None,
            "reason": reason,
        },
    )
    return deposit
