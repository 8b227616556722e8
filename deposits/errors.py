"""Refusals of deposit requests, each with a stable code (API.md error shape)."""

from __future__ import annotations

from marqetfi.core.errors import ApplicationError, ConflictError, NotFoundError


class UnsupportedChain(ApplicationError):
    code = "unsupported_chain"
    default_message = "Deposits are not accepted on this chain."


class TransactionNotFound(NotFoundError):
    code = "transaction_not_found"
    default_message = (
        "The chain has no mined transaction with this hash yet; report it again once it is mined."
    )


class InvalidTransactionHash(ApplicationError):
    """A hash that cannot be one (the API's serializer refuses it first, as ``validation_error``;
    this is the service's own guard for every other caller)."""

    code = "invalid_transaction_hash"
    default_message = "Not a transaction hash (0x and 64 hex digits)."


class TransactionFailed(ApplicationError):
    code = "transaction_failed"
    default_message = "The transaction reverted on chain: it moved no funds."


class NotYourDepositAddress(ApplicationError):
    code = "not_your_deposit_address"
    default_message = "The transaction sends nothing to your deposit address."


class UnsupportedToken(ApplicationError):
    code = "unsupported_token"
    default_message = "The transaction sends a token this chain does not accept for deposits."


class PlatformTransaction(ApplicationError):
    code = "platform_transaction"
    default_message = (
        "This transaction is the platform's own (a swap of an earlier deposit or a gas top-up), "
        "not a deposit."
    )


class ChainUnavailable(ApplicationError):
    code = "chain_unavailable"
    status_code = 503
    default_message = "The chain's RPC cannot be reached right now; try again shortly."


class DepositNotFound(NotFoundError):
    code = "deposit_not_found"
    default_message = "No such deposit."


class DepositNotRetryable(ConflictError):
    code = "deposit_not_retryable"
    default_message = "Only a failed or refunded deposit can be retried."


class DepositAlreadyFinal(ConflictError):
    code = "deposit_already_final"
    default_message = "The deposit is already completed; it cannot be resolved again."


class ResolutionRejected(ApplicationError):
    code = "resolution_rejected"
    default_message = "The manual resolution is not valid."
