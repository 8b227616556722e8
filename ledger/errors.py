"""Refusals of the ledger, each with a stable code. A refused posting writes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marqetfi.core.errors import ApplicationError, ConflictError


class InvalidPosting(ApplicationError):
    """A transaction that would break the books; raised for a caller's mistake, before any write."""

    code = "invalid_posting"
    status_code = 400
    default_message = "The ledger transaction is not valid."


class InvalidAmount(InvalidPosting):
    code = "invalid_amount"
    default_message = "An amount must be a non-zero Decimal with at most 6 decimal places."


class UnbalancedTransaction(InvalidPosting):
    code = "unbalanced_transaction"
    default_message = "A ledger transaction needs at least two legs that sum to exactly zero."


class InsufficientBalance(ConflictError):
    """The posting would take a user's account below zero; ``details`` say by how much."""

    code = "insufficient_balance"
    default_message = "The balance is too low for this."

    def __init__(
        self, *, required: Decimal, available: Decimal, account: str = "", message: str | None = None
    ) -> None:
        details: dict[str, Any] = {"required": f"{required:f}", "available": f"{available:f}"}
        if account:
            details["account"] = account
        super().__init__(message, details=details)
        self.required = required
        self.available = available


class AdjustmentRejected(ApplicationError):
    """An operator's adjustment with a bad field; ``details`` map each field to its messages."""

    code = "validation_error"
    status_code = 400
    default_message = "Invalid input."
