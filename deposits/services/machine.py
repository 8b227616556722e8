"""The deposit state machine: confirmations, the LI-FI swap, and the credit, one step at a time.

``deposit_advance`` takes one step of one deposit. It first *claims* the deposit (a
conditional UPDATE pushing ``next_action_at`` past a lease), so two workers never work on
one deposit at once and a worker that dies mid-step leaves it to be taken again when the
lease runs out. Provider calls happen outside database transactions; their outcome is
written, with the next state and the time to look again, under the row lock.

The one step that must never run twice is sending the swap transaction. Before the wallet
is asked to send, the swap is saved as ``sending`` with the sender's nonce and the chain's
head; a ``sending`` swap found later (the answer was lost, or the worker died) is
reconciled on chain: a mined transaction with that nonce is the swap's (or, if it went
elsewhere, the quote step is abandoned); one still pending is waited for; none after
``send_reconcile_seconds`` means nothing was broadcast, and only then is a fresh quote taken.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Wallet
from deposits.app_settings import DEPOSIT_POLICY, DepositPolicy
from deposits.models import (
    ACTIVE_STATUSES,
    NATIVE_TOKEN,
    Deposit,
    DepositStatus,
    DepositTransition,
    Swap,
    SwapStatus,
)
from deposits.presenters import deposit_data
from ledger.models import AMOUNT_QUANTUM
from ledger.services import deposit_credit_post, deposit_receive_post
from marqetfi.core.alerts import operator_alert_raise
from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.events import publish
from providers import registry
from providers.base import EvmTransaction, SwapQuote, TransactionTransfers
from providers.base import SwapStatus as ProviderSwapStatus
from providers.breaker import call_provider
from providers.chains.evm.client import EvmChainClient
from providers.errors import ProviderError, ProviderNotConfigured

logger = logging.getLogger(__name__)

# A quote older than this is not sent: LI-FI quotes expire quickly, and a stale one reverts.
QUOTE_MAX_AGE = timedelta(seconds=90)
CONFIRMATION_POLL_SECONDS = 3
# Gas the deposit wallet's own transactions may use: an ERC-20 approval, and a swap (LI-FI's
# routes stay well below this; the quote's own gas limit is used when it gives one).
APPROVAL_GAS = 100_000
SWAP_GAS = 400_000
APPROVAL_POLL_SECONDS = 3
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class StepOutcome:
    deposit_id: str
    status: str
    moved: bool


# --- bookkeeping -----------------------------------------------------------------------


def _policy() -> DepositPolicy:
    return app_setting(DEPOSIT_POLICY)


def _swaps(deposit: Deposit) -> list[Swap]:
    return list(Swap.objects.filter(deposit=deposit).order_by("attempt"))


def _current_swap(deposit: Deposit) -> Swap | None:
    return Swap.objects.filter(deposit=deposit).order_by("-attempt").first()


def _locked(deposit_id: Any) -> Deposit:
    return Deposit.objects.select_for_update().get(pk=deposit_id)


def _publish(deposit: Deposit, event_type: str, **extra: Any) -> None:
    data = deposit_data(deposit, swaps=_swaps(deposit), settlement_decimals=_policy().settlement_decimals)
    data.update(extra)
    publish(user_id=deposit.user_id, type=event_type, data=data)


def _save(deposit: Deposit, *fields: str) -> None:
    deposit.resource_version = F("resource_version") + 1
    deposit.save(update_fields=[*fields, "resource_version", "updated_at"])
    deposit.refresh_from_db(fields=["resource_version", "updated_at"])


def move(
    deposit: Deposit,
    to_status: str,
    *,
    reason: str,
    event: str | None = None,
    details: dict[str, Any] | None = None,
    actor: Any = None,
    next_in: float = 0,
    fields: tuple[str, ...] = (),
) -> None:
    """Change status (or, with the same status, just record the step), write the transition,
    publish ``event`` - all in the caller's transaction."""
    from_status = deposit.status
    deposit.status = to_status
    deposit.next_action_at = timezone.now() + timedelta(seconds=next_in)
    deposit.step_failures = 0
    if to_status == DepositStatus.COMPLETED:
        deposit.completed_at = timezone.now()
    _save(deposit, "status", "next_action_at", "step_failures", "completed_at", *fields)
    DepositTransition.objects.create(
        deposit=deposit,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        details=details or {},
        actor=actor if getattr(actor, "pk", None) else None,
    )
    if event:
        _publish(deposit, event)


def _wait(deposit_id: Any, seconds: float, **changes: Any) -> None:
    """Look at the deposit again in ``seconds`` (no state change)."""
    Deposit.objects.filter(pk=deposit_id).update(
        next_action_at=timezone.now() + timedelta(seconds=seconds), **changes
    )


def _backoff(deposit: Deposit, exc: ProviderError | None = None) -> None:
    """A provider failed in a way worth retrying: wait longer each time (or as long as it asked)."""
    policy = _policy()
    failures = deposit.step_failures + 1
    delay = min(policy.poll_base_seconds * 2 ** min(failures - 1, 16), policy.poll_max_seconds)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        delay = max(delay, min(float(retry_after), policy.poll_max_seconds))
    _wait(deposit.pk, delay, step_failures=failures)
    logger.info("Deposit %s waits %ss after a provider error: %s", deposit.pk, delay, exc)


def _claim(deposit_id: Any) -> Deposit | None:
    """Take the deposit for one step if it is due and no other worker holds it."""
    now = timezone.now()
    claimed = Deposit.objects.filter(
        pk=deposit_id, next_action_at__lte=now, status__in=[s.value for s in ACTIVE_STATUSES]
    ).update(next_action_at=now + timedelta(seconds=settings.DEPOSIT_STEP_LEASE_SECONDS))
    if not claimed:
        return None
    return Deposit.objects.get(pk=deposit_id)


def _is_settlement(deposit: Deposit, policy: DepositPolicy) -> bool:
    return (
        deposit.chain_id == policy.settlement_chain_id
        and deposit.token_address.lower() == policy.settlement_token.lower()
    )


def _usdc(raw: int, decimals: int) -> Decimal:
    amount = Decimal(raw).scaleb(-decimals)
    return amount.quantize(AMOUNT_QUANTUM, rounding="ROUND_DOWN")


def _fail(
    deposit: Deposit,
    *,
    code: str,
    reason: str,
    alert: bool = True,
    status: str = DepositStatus.FAILED,
    fields: tuple[str, ...] = (),
    detail: str = "",
) -> None:
    """End the deposit without a credit. ``reason`` is shown to the user; ``detail`` (what a
    provider said, verbatim) goes to the history's details and the alert, for operators."""
    deposit.failure_code = code
    deposit.failure_reason = reason
    move(
        deposit,
        status,
        reason=reason,
        event="swap.failed" if deposit.swap_attempts else "deposit.failed",
        details={"code": code, **({"provider_message": detail} if detail else {})},
        fields=("failure_code", "failure_reason", *fields),
    )
    if alert:
        operator_alert_raise(
            source="deposits",
            code=code,
            reference=f"deposit:{deposit.pk}",
            message=f"Deposit {deposit.pk} of user {deposit.user_id} {status}: {reason}",
            details={"chain_id": deposit.chain_id, "tx_hash": deposit.tx_hash, "provider_message": detail},
        )


def credit(
    deposit: Deposit, *, amount: Decimal, reason: str, actor: Any = None, swap: Swap | None = None
) -> None:
    """Receive and credit ``amount`` USDC once: the deposit's ``credit_transaction`` is set in
    the same transaction as the postings, under the row lock, and checked first."""
    if deposit.credit_transaction_id is not None:
        return
    policy = _policy()
    if amount <= 0 or amount > policy.max_credit_usdc:
        _fail(
            deposit,
            code="credit_out_of_range",
            reason=f"The amount to credit ({amount} USDC) is outside 0 to {policy.max_credit_usdc}.",
        )
        return
    reference = f"deposit:{deposit.pk}"
    memo = f"{deposit.token_symbol} on chain {deposit.chain_id}, tx {deposit.tx_hash}"
    deposit_receive_post(amount=amount, reference=reference, memo=memo)
    posted = deposit_credit_post(user=deposit.user, amount=amount, reference=reference, memo=memo)
    deposit.credited_amount = amount
    deposit.credited_at = timezone.now()
    deposit.credit_transaction = posted
    move(
        deposit,
        DepositStatus.COMPLETED,
        reason=reason,
        actor=actor,
        details={"amount": f"{amount:f}", "ledger_transaction": str(posted.pk)},
        fields=("credited_amount", "credited_at", "credit_transaction"),
    )
    if swap is not None:
        _publish(deposit, "swap.completed")
    _publish(deposit, "deposit.completed")


# --- steps -----------------------------------------------------------------------------


def _transfer_still_there(deposit: Deposit, moved: TransactionTransfers) -> int | None:
    """The transfer's log index in the (re-mined) transaction, or None if it is not there."""
    if deposit.is_native:
        native = moved.native
        same = (
            native is not None
            and native.to_address.lower() == deposit.to_address.lower()
            and native.raw == int(deposit.amount_raw)
        )
        return deposit.log_index if same else None
    for transfer in moved.token_transfers:
        if (
            transfer.token_address.lower() == deposit.token_address.lower()
            and transfer.to_address.lower() == deposit.to_address.lower()
            and transfer.raw == int(deposit.amount_raw)
        ):
            return transfer.log_index
    return None


def _follow_remined(deposit: Deposit, moved: TransactionTransfers) -> bool:
    """The transaction is in another block than when it was recorded (a reorganisation): keep
    following it if the transfer is still there, else drop the deposit. False when dropped."""
    receipt = moved.receipt
    new_index = _transfer_still_there(deposit, moved)
    if new_index is None:
        _fail(
            deposit,
            code="transfer_reorganised_away",
            reason="After a reorganisation the transaction no longer makes this transfer.",
            status=DepositStatus.DROPPED,
        )
        return False
    duplicate = (
        Deposit.objects.filter(chain_id=deposit.chain_id, tx_hash=deposit.tx_hash, log_index=new_index)
        .exclude(pk=deposit.pk)
        .exists()
    )
    if duplicate:
        # The scanner recorded the re-mined transfer already: that row carries on.
        _fail(
            deposit,
            code="duplicate_after_reorg",
            reason="Recorded again after a reorganisation; the other record carries on.",
            alert=False,
            status=DepositStatus.DROPPED,
        )
        return False
    deposit.block_hash = receipt.block_hash
    deposit.block_number = receipt.block_number
    deposit.log_index = new_index
    _save(deposit, "block_hash", "block_number", "log_index")
    return True


def _transaction_vanished(deposit: Deposit) -> None:
    """Seen mined once, gone now: reorganised away. It may come back; dropped after a while."""
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        vanished_for = (timezone.now() - deposit.updated_at).total_seconds()
        if deposit.confirmations == 0 and vanished_for >= settings.DEPOSIT_DROP_AFTER_SECONDS:
            _fail(
                deposit,
                code="transaction_reorganised_away",
                reason="The transaction is no longer on the chain (reorganised away) and did not come back.",
                alert=False,
                status=DepositStatus.DROPPED,
            )
            return
        if deposit.confirmations or deposit.block_hash:
            deposit.confirmations = 0
            deposit.block_hash = ""
            _save(deposit, "confirmations", "block_hash")
        _wait(deposit.pk, CONFIRMATION_POLL_SECONDS)


def _step_confirm(deposit: Deposit) -> None:
    """Count confirmations on the receipt as it is now; credit or start the swap when enough."""
    try:
        moved = registry.chain_client(deposit.chain_id).transaction_transfers(tx_hash=deposit.tx_hash)
    except ProviderError as exc:
        _backoff(deposit, exc)
        return
    if moved is None:
        _transaction_vanished(deposit)
        return
    receipt = moved.receipt
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        if deposit.status not in (DepositStatus.DETECTED, DepositStatus.CONFIRMING):
            return
        if not receipt.success:
            _fail(
                deposit, code="transaction_failed", reason="The transaction reverted on chain.", alert=False
            )
            return
        remined = bool(receipt.block_hash) and receipt.block_hash != deposit.block_hash
        if remined and not _follow_remined(deposit, moved):
            return
        deposit.confirmations = receipt.confirmations
        enough = receipt.confirmations >= deposit.confirmations_required
        if deposit.status == DepositStatus.DETECTED:
            progress = f"{receipt.confirmations} of {deposit.confirmations_required} confirmations"
            move(deposit, DepositStatus.CONFIRMING, reason=progress, fields=("confirmations",))
        else:
            _save(deposit, "confirmations")
        if not enough:
            _wait(deposit.pk, CONFIRMATION_POLL_SECONDS)
            return
        _publish(deposit, "deposit.confirmed")
        policy = _policy()
        if _is_settlement(deposit, policy):
            amount = _usdc(int(deposit.amount_raw), deposit.token_decimals)
            credit(deposit, amount=amount, reason="already in the settlement token: credited directly")
        else:
            move(deposit, DepositStatus.QUOTING, reason="confirmed; converting to USDC")


def _quote_problem(
    quote: SwapQuote, deposit: Deposit, policy: DepositPolicy, amount_raw: int, to_address: str
) -> tuple[str, str] | None:
    """Why the quote cannot be used, as (code, reason), or None when it can."""
    if (
        quote.from_chain_id != deposit.chain_id
        or quote.from_token.lower() != deposit.token_address.lower()
        or quote.from_amount_raw != amount_raw
        or quote.to_chain_id != policy.settlement_chain_id
        or quote.to_token.lower() != policy.settlement_token.lower()
        or quote.to_address.lower() != to_address.lower()
        or quote.transaction.chain_id != deposit.chain_id
    ):
        return (
            "quote_mismatch",
            "The quote is not for this deposit (chain, token, amount or recipient differ).",
        )
    if quote.to_amount_raw <= 0 or quote.to_amount_min_raw <= 0:
        return "quote_empty", "The quote delivers nothing."
    slippage = Decimal(quote.to_amount_raw - quote.to_amount_min_raw) / Decimal(quote.to_amount_raw)
    if slippage > policy.max_slippage:
        return (
            "slippage_exceeded",
            f"The quote's minimum is {slippage:.4%} below its estimate; "
            f"the limit is {policy.max_slippage:.4%}.",
        )
    if quote.from_amount_usd:
        fees = (quote.fee_costs_usd + quote.gas_costs_usd) / quote.from_amount_usd
        if fees > policy.max_fee_fraction:
            return (
                "fees_too_high",
                f"Fees and gas are {fees:.4%} of the amount; the limit is {policy.max_fee_fraction:.4%}.",
            )
    return None


def _attempt_failed(
    deposit: Deposit,
    *,
    code: str,
    reason: str,
    swap: Swap | None,
    refunded: bool = False,
    detail: str = "",
) -> None:
    """A quote step failed (refused quote, failed or refunded swap): retry with a fresh quote
    until ``max_swap_attempts``, then the deposit fails and operators are alerted."""
    policy = _policy()
    deposit.swap_attempts += 1
    if swap is not None:
        swap.status = SwapStatus.REFUNDED if refunded else SwapStatus.FAILED
        swap.failure_code = code
        swap.finished_at = timezone.now()
        swap.save(update_fields=["status", "failure_code", "finished_at", "updated_at"])
    if deposit.swap_attempts >= policy.max_swap_attempts:
        _fail(
            deposit,
            code=code,
            reason=f"{reason} (after {deposit.swap_attempts} attempts)",
            status=DepositStatus.REFUNDED if refunded else DepositStatus.FAILED,
            fields=("swap_attempts",),
            detail=detail,
        )
        return
    delay = min(policy.poll_base_seconds * 2 ** (deposit.swap_attempts - 1), policy.poll_max_seconds)
    move(
        deposit,
        DepositStatus.QUOTING,
        reason=f"{reason}; retrying with a fresh quote",
        event="swap.failed" if swap is not None else None,
        details={
            "code": code,
            "attempt": deposit.swap_attempts,
            **({"provider_message": detail} if detail else {}),
        },
        next_in=delay,
        fields=("swap_attempts",),
    )


def _wallet(deposit: Deposit) -> Wallet:
    if deposit.wallet is None:
        raise ProviderNotConfigured("deposits", "the deposit has no wallet to swap from")
    return deposit.wallet


def _native_reserve(deposit: Deposit, policy: DepositPolicy) -> int:
    """What a native deposit keeps back for its swap's gas: the policy's reserve, or more when
    the chain's fees now ask for more."""
    client = registry.chain_client(deposit.chain_id)
    fee = client.max_fee_per_gas() if isinstance(client, EvmChainClient) else 0
    return max(policy.native_gas_reserve_wei, SWAP_GAS * fee)


def _step_quote(deposit: Deposit) -> None:
    policy = _policy()
    amount_raw = int(deposit.amount_raw)
    if deposit.token_address == NATIVE_TOKEN:
        amount_raw -= _native_reserve(deposit, policy)
        if amount_raw <= 0:
            with transaction.atomic():
                _fail(
                    _locked(deposit.pk),
                    code="amount_below_gas_reserve",
                    reason="The deposit does not cover the gas its swap needs.",
                )
            return
    if not policy.collection_address:
        # Swapped USDC is the platform's: it goes to the collection address. Delivered to the
        # user's own deposit address it would look like a second deposit.
        operator_alert_raise(
            source="deposits",
            code="no_collection_address",
            reference="deposit_policy",
            message="Deposits that need a swap wait: set deposit_policy.collection_address.",
        )
        _wait(deposit.pk, policy.poll_max_seconds)
        return
    to_address = policy.collection_address
    wallet = _wallet(deposit)
    try:
        provider = registry.swap_provider()
        quote = call_provider(
            provider.name,
            provider.quote,
            from_chain_id=deposit.chain_id,
            from_token=deposit.token_address,
            from_amount_raw=amount_raw,
            from_address=wallet.address,
            to_chain_id=policy.settlement_chain_id,
            to_token=policy.settlement_token,
            to_address=to_address,
            slippage=policy.max_slippage,
        )
    except ProviderError as exc:
        if exc.retryable or isinstance(exc, ProviderNotConfigured):
            _backoff(deposit, exc)
            return
        with transaction.atomic():
            _attempt_failed(
                _locked(deposit.pk),
                code="no_quote",
                reason="No swap route to USDC was found for this token and amount.",
                swap=None,
                detail=exc.message,
            )
        return
    problem = _quote_problem(quote, deposit, policy, amount_raw, to_address)
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        if deposit.status != DepositStatus.QUOTING:
            return
        if problem is not None:
            _attempt_failed(deposit, code=problem[0], reason=problem[1], swap=None)
            return
        attempt = (
            Swap.objects.filter(deposit=deposit)
            .order_by("-attempt")
            .values_list("attempt", flat=True)
            .first()
            or 0
        ) + 1
        Swap.objects.create(
            deposit=deposit,
            attempt=attempt,
            provider=provider.name,
            tool=quote.tool[:64],
            quote_id=quote.provider_quote_id[:200],
            quote=quote.raw,
            from_chain_id=quote.from_chain_id,
            from_token=quote.from_token,
            from_amount_raw=quote.from_amount_raw,
            to_chain_id=quote.to_chain_id,
            to_token=quote.to_token,
            to_address=quote.to_address,
            quoted_to_amount_raw=quote.to_amount_raw,
            quoted_to_amount_min_raw=quote.to_amount_min_raw,
            approval_address=quote.approval_address or "",
        )
        move(
            deposit,
            DepositStatus.SWAPPING,
            reason=f"quote {attempt} taken ({quote.tool})",
            event="swap.started",
        )


def _quote_transaction(swap: Swap) -> EvmTransaction:
    request = swap.quote.get("transactionRequest") or {}

    def number(key: str) -> int:
        value = request.get(key)
        if value in (None, ""):
            return 0
        return int(value, 16) if isinstance(value, str) and value.startswith("0x") else int(value)

    return EvmTransaction(
        chain_id=swap.from_chain_id,
        to=str(request["to"]),
        data=str(request.get("data") or "0x"),
        value=number("value"),
        gas_limit=number("gasLimit") or None,
    )


def _send(swap: Swap, wallet: Wallet, transaction_to_send: EvmTransaction, *, kind: str) -> str | None:
    """Hand one transaction to the user's wallet provider. Returns the hash, or None when the
    outcome is unknown (the hash, if the signer named one, is kept for reconciliation)."""
    provider = registry.wallet_provider(wallet.provider)
    try:
        sent = call_provider(
            wallet.provider,
            provider.sign_and_send_transaction,
            provider_wallet_id=wallet.provider_wallet_id,
            transaction=transaction_to_send,
        )
    except ProviderError as exc:
        named = _TX_HASH.search(exc.message or "")
        if named and kind == "swap":
            Swap.objects.filter(pk=swap.pk, tx_hash="").update(tx_hash=named.group(0).lower())
        raise
    return sent.tx_hash.lower()


def _gas_ready(deposit: Deposit, swap: Swap, wallet: Wallet, client: EvmChainClient) -> bool:
    """The wallet holds the native coin its approval and swap cost: a native deposit keeps its
    reserve; a token deposit gets a top-up from the chain's gas station once. False means:
    look again later (top-up on its way) or the deposit failed for want of gas."""
    if swap.from_token == NATIVE_TOKEN:
        return True
    swap_gas = _quote_transaction(swap).gas_limit or SWAP_GAS
    needed = max(_policy().native_gas_reserve_wei, (APPROVAL_GAS + swap_gas) * client.max_fee_per_gas())
    balance = client.balances(address=wallet.address, tokens=[])[0].raw
    if balance >= needed:
        return True
    if swap.gas_topup_tx_hash:
        if client.receipt(tx_hash=swap.gas_topup_tx_hash) is None:
            _wait(deposit.pk, APPROVAL_POLL_SECONDS)
            return False
        return True  # mined: go on (the send itself says if gas is still short)
    topup = registry.chain_directory().gas_topup(
        chain_id=deposit.chain_id, to_address=wallet.address, wei=needed - balance
    )
    if topup is None:
        with transaction.atomic():
            _fail(
                _locked(deposit.pk),
                code="insufficient_gas",
                reason=(
                    "The deposit wallet holds no ETH for the swap's gas and this chain has no gas "
                    "station: send a little ETH to the deposit address; support can then retry the swap."
                ),
                detail=f"balance {balance} wei, {needed} wei needed",
            )
        return False
    Swap.objects.filter(pk=swap.pk).update(gas_topup_tx_hash=topup)
    _wait(deposit.pk, APPROVAL_POLL_SECONDS)
    return False


def _approval_ready(deposit: Deposit, swap: Swap, wallet: Wallet, client: EvmChainClient) -> bool:
    """Whether the quote's spender may take the amount; sends the approval when it may not.
    False means: look again later (approval pending) or the attempt failed."""
    if not swap.approval_address or swap.from_token == NATIVE_TOKEN:
        return True
    if swap.status == SwapStatus.APPROVING and swap.approval_tx_hash:
        receipt = client.receipt(tx_hash=swap.approval_tx_hash)
        if receipt is None:
            _wait(deposit.pk, APPROVAL_POLL_SECONDS)
            return False
        if not receipt.success:
            with transaction.atomic():
                _attempt_failed(
                    _locked(deposit.pk),
                    code="approval_failed",
                    reason="The token approval reverted.",
                    swap=swap,
                )
            return False
    allowance = client.erc20_allowance(
        token=swap.from_token, owner=wallet.address, spender=swap.approval_address
    )
    if allowance >= int(swap.from_amount_raw):
        return True
    if swap.status == SwapStatus.APPROVING and swap.approval_tx_hash:
        _wait(deposit.pk, APPROVAL_POLL_SECONDS)
        return False
    approve = EvmTransaction(
        chain_id=deposit.chain_id,
        to=swap.from_token,
        data=client.erc20_approve_data(spender=swap.approval_address, amount_raw=int(swap.from_amount_raw)),
        gas_limit=APPROVAL_GAS,  # fixed: the gas the wallet was topped up for
    )
    Swap.objects.filter(pk=swap.pk).update(status=SwapStatus.APPROVING)
    # An approval sent twice only sets the same allowance twice: no reconciliation needed.
    approval_hash = _send(swap, wallet, approve, kind="approval")
    Swap.objects.filter(pk=swap.pk).update(approval_tx_hash=approval_hash or "")
    _wait(deposit.pk, APPROVAL_POLL_SECONDS)
    return False


def _send_swap(deposit: Deposit, swap: Swap, wallet: Wallet, client: EvmChainClient) -> None:
    """Record the attempt (nonce, head) and only then hand the transaction to the wallet."""
    nonce = client.transaction_count(address=wallet.address, block="pending")
    head = client.block_number()
    Swap.objects.filter(pk=swap.pk).update(
        status=SwapStatus.SENDING,
        sender_address=wallet.address,
        sender_nonce=nonce,
        send_block=head,
        send_started_at=timezone.now(),
    )
    swap.refresh_from_db()
    try:
        tx_hash = _send(swap, wallet, _quote_transaction(swap), kind="swap")
    except ProviderError as exc:
        refused = exc.status_code is not None and 400 <= exc.status_code < 500
        if refused or (not exc.retryable and exc.response is not None):
            # The signer or the node refused it outright: nothing was broadcast.
            with transaction.atomic():
                _attempt_failed(
                    _locked(deposit.pk),
                    code="send_refused",
                    reason="The wallet refused to send the swap transaction.",
                    detail=exc.message,
                    swap=swap,
                )
            return
        logger.warning(
            "Swap %s of deposit %s: sending had no clear outcome (%s); reconciling on chain",
            swap.pk,
            deposit.pk,
            exc,
        )
        _wait(deposit.pk, APPROVAL_POLL_SECONDS)
        return
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        Swap.objects.filter(pk=swap.pk).update(status=SwapStatus.SENT, tx_hash=tx_hash)
        move(
            deposit,
            DepositStatus.BRIDGING,
            reason=f"swap transaction {tx_hash} sent",
            next_in=_policy().poll_base_seconds,
        )


def _step_swap(deposit: Deposit) -> None:
    swap = _current_swap(deposit)
    if swap is None or swap.status in (SwapStatus.FAILED, SwapStatus.REFUNDED, SwapStatus.ABANDONED):
        with transaction.atomic():
            move(_locked(deposit.pk), DepositStatus.QUOTING, reason="no swap in progress; quoting")
        return
    client = registry.chain_client(deposit.chain_id)
    if not isinstance(client, EvmChainClient):
        raise ProviderNotConfigured(f"evm:{deposit.chain_id}", "swaps need an EVM chain client")
    if swap.status == SwapStatus.SENDING:
        _reconcile_send(deposit, swap, client)
        return
    if swap.status in (SwapStatus.SENT, SwapStatus.DONE):
        with transaction.atomic():
            move(_locked(deposit.pk), DepositStatus.BRIDGING, reason="swap transaction sent")
        return
    if timezone.now() - swap.created_at > QUOTE_MAX_AGE:
        with transaction.atomic():
            deposit = _locked(deposit.pk)
            Swap.objects.filter(pk=swap.pk).update(
                status=SwapStatus.ABANDONED, failure_code="quote_expired", finished_at=timezone.now()
            )
            move(deposit, DepositStatus.QUOTING, reason="the quote expired before it was sent; quoting again")
        return
    wallet = _wallet(deposit)
    try:
        if _gas_ready(deposit, swap, wallet, client) and _approval_ready(deposit, swap, wallet, client):
            _send_swap(deposit, swap, wallet, client)
    except ProviderError as exc:
        if exc.retryable:
            _backoff(deposit, exc)
            return
        with transaction.atomic():
            _attempt_failed(
                _locked(deposit.pk),
                code="send_refused",
                reason="The wallet or the chain refused the swap's transactions.",
                detail=exc.message,
                swap=swap,
            )


def _reconcile_send(deposit: Deposit, swap: Swap, client: EvmChainClient) -> None:
    """A swap left ``sending``: find out on chain whether its transaction went out."""
    policy = _policy()
    try:
        if swap.tx_hash:
            receipt = client.receipt(tx_hash=swap.tx_hash)
            if receipt is not None:
                with transaction.atomic():
                    deposit = _locked(deposit.pk)
                    Swap.objects.filter(pk=swap.pk).update(status=SwapStatus.SENT)
                    move(
                        deposit,
                        DepositStatus.BRIDGING,
                        reason=f"swap transaction {swap.tx_hash} found on chain",
                    )
                return
        mined_nonce = client.transaction_count(address=swap.sender_address, block="latest")
        pending_nonce = client.transaction_count(address=swap.sender_address, block="pending")
        found_hash = None
        if swap.sender_nonce is not None and mined_nonce > swap.sender_nonce:
            found_hash = _find_sent(client, swap)
    except ProviderError as exc:
        _backoff(deposit, exc)
        return
    if swap.sender_nonce is not None and mined_nonce > swap.sender_nonce:
        with transaction.atomic():
            deposit = _locked(deposit.pk)
            if found_hash:
                Swap.objects.filter(pk=swap.pk).update(status=SwapStatus.SENT, tx_hash=found_hash)
                move(
                    deposit,
                    DepositStatus.BRIDGING,
                    reason=f"swap transaction {found_hash} found on chain by its nonce",
                )
            else:
                Swap.objects.filter(pk=swap.pk).update(
                    status=SwapStatus.ABANDONED,
                    failure_code="nonce_used_elsewhere",
                    finished_at=timezone.now(),
                )
                move(
                    deposit,
                    DepositStatus.QUOTING,
                    reason="the wallet's nonce went to another transaction; quoting again",
                )
        return
    if swap.sender_nonce is not None and pending_nonce > swap.sender_nonce:
        _wait(deposit.pk, APPROVAL_POLL_SECONDS)  # in the node's pool: wait for it
        return
    started = swap.send_started_at or swap.updated_at
    if (timezone.now() - started).total_seconds() < policy.send_reconcile_seconds:
        _wait(deposit.pk, APPROVAL_POLL_SECONDS * 2)
        return
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        Swap.objects.filter(pk=swap.pk).update(
            status=SwapStatus.ABANDONED, failure_code="never_broadcast", finished_at=timezone.now()
        )
        move(deposit, DepositStatus.QUOTING, reason="the swap transaction was never broadcast; quoting again")


def _find_sent(client: EvmChainClient, swap: Swap) -> str | None:
    """The hash of the sender's transaction with the recorded nonce, if it went to the quote's
    target (else None: the nonce was used by another transaction)."""
    if swap.send_block is None or swap.sender_nonce is None:
        return None
    found = client.transaction_by_nonce(
        sender=swap.sender_address, nonce=swap.sender_nonce, from_block=max(swap.send_block - 1, 0)
    )
    target = str((swap.quote.get("transactionRequest") or {}).get("to") or "").lower()
    if found is None or (found[1] or "").lower() != target:
        return None
    return found[0]


def _bridge_done(deposit: Deposit, swap: Swap, status: ProviderSwapStatus) -> None:
    """LI-FI says DONE: credit what it says was received (not what was quoted), once."""
    policy = _policy()
    received = status.received_amount_raw
    right_token = (
        status.received_token is not None
        and status.received_token.lower() == policy.settlement_token.lower()
        and status.received_chain_id in (None, policy.settlement_chain_id)
    )
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        if deposit.status != DepositStatus.BRIDGING:
            return
        if not received or not right_token:
            Swap.objects.filter(pk=swap.pk).update(status=SwapStatus.DONE, finished_at=timezone.now())
            _fail(
                deposit,
                code="unexpected_swap_result",
                reason=(
                    f"LI-FI reports the swap done ({status.substatus}) but delivered {received} of "
                    f"{status.received_token} on chain {status.received_chain_id}: resolve manually."
                ),
            )
            return
        Swap.objects.filter(pk=swap.pk).update(
            status=SwapStatus.DONE,
            received_amount_raw=received,
            receiving_tx_hash=(status.receiving_tx_hash or "")[:66],
            finished_at=timezone.now(),
        )
        credit(
            deposit,
            amount=_usdc(received, policy.settlement_decimals),
            reason=f"swap done ({status.substatus or 'COMPLETED'})",
            swap=swap,
        )


def _bridge_failed(deposit: Deposit, swap: Swap, status: ProviderSwapStatus) -> None:
    refunded = status.substatus == "REFUNDED"
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        if deposit.status != DepositStatus.BRIDGING:
            return
        _attempt_failed(
            deposit,
            code=f"swap_{(status.substatus or 'failed').lower()}",
            reason=f"LI-FI: {status.substatus_message or status.substatus or 'failed'}",
            swap=swap,
            refunded=refunded,
        )


def _swap_reverted(swap: Swap) -> bool:
    try:
        receipt = registry.chain_client(swap.from_chain_id).receipt(tx_hash=swap.tx_hash)
    except ProviderError:
        return False
    return receipt is not None and not receipt.success


def _step_bridge(deposit: Deposit) -> None:
    """Poll LI-FI's status of the swap transaction (beat brings the deposit back, with backoff)."""
    policy = _policy()
    swap = _current_swap(deposit)
    if swap is None or not swap.tx_hash:
        with transaction.atomic():
            move(_locked(deposit.pk), DepositStatus.SWAPPING, reason="no sent swap on record")
        return
    try:
        provider = registry.swap_provider(swap.provider)
        status: ProviderSwapStatus = call_provider(
            provider.name,
            provider.status,
            tx_hash=swap.tx_hash,
            from_chain_id=swap.from_chain_id,
            to_chain_id=swap.to_chain_id,
        )
    except ProviderError as exc:
        _backoff(deposit, exc)
        return
    Swap.objects.filter(pk=swap.pk).update(
        polls=F("polls") + 1,
        provider_status=status.status,
        provider_substatus=(status.substatus or "")[:64],
        status_message=status.substatus_message or "",
    )
    swap.refresh_from_db()
    if status.status == "done" and status.substatus != "REFUNDED":
        _bridge_done(deposit, swap, status)
        return
    if status.status in {"failed", "done"}:
        _bridge_failed(deposit, swap, status)
        return
    if status.status == "not_found" and _swap_reverted(swap):
        with transaction.atomic():
            _attempt_failed(
                _locked(deposit.pk), code="swap_reverted", reason="The swap transaction reverted.", swap=swap
            )
        return
    # pending, not_found, invalid: look again later, a little later every third poll.
    delay = min(policy.poll_base_seconds * 2 ** min(max(swap.polls - 1, 0) // 3, 10), policy.poll_max_seconds)
    with transaction.atomic():
        deposit = _locked(deposit.pk)
        _save(deposit)
        _wait(deposit.pk, delay)


_STEPS = {
    DepositStatus.DETECTED: _step_confirm,
    DepositStatus.CONFIRMING: _step_confirm,
    DepositStatus.QUOTING: _step_quote,
    DepositStatus.SWAPPING: _step_swap,
    DepositStatus.BRIDGING: _step_bridge,
}


def deposit_advance(*, deposit_id: Any) -> StepOutcome | None:
    """Take one step of the deposit if it is due; None if it is not (or another worker has it)."""
    deposit = _claim(deposit_id)
    if deposit is None:
        return None
    before = deposit.status
    step = _STEPS.get(DepositStatus(deposit.status))
    if step is None:
        return None
    try:
        step(deposit)
    except ProviderNotConfigured as exc:
        logger.warning("Deposit %s waits: %s", deposit_id, exc)
        _backoff(deposit, exc)
    except Exception:
        # Leave it for the next run (the lease expires) rather than stuck; the error is logged.
        logger.exception("Deposit %s: step %s failed", deposit_id, before)
        _backoff(deposit)
    deposit.refresh_from_db(fields=["status"])
    return StepOutcome(deposit_id=str(deposit_id), status=deposit.status, moved=deposit.status != before)


def deposits_due(*, limit: int | None = None) -> list[str]:
    """Ids of active deposits whose next step is due, oldest first."""
    batch = limit or settings.DEPOSIT_ADVANCE_BATCH
    ids = (
        Deposit.objects.filter(
            status__in=[s.value for s in ACTIVE_STATUSES], next_action_at__lte=timezone.now()
        )
        .order_by("next_action_at")
        .values_list("pk", flat=True)[:batch]
    )
    return [str(pk) for pk in ids]


def deposit_run_steps(*, deposit_id: Any, max_steps: int = 20) -> str | None:
    """Advance one deposit step after step while a step moves it and the next is due at once."""
    status = None
    for _ in range(max_steps):
        outcome = deposit_advance(deposit_id=deposit_id)
        if outcome is None:
            break
        status = outcome.status
        if not outcome.moved:
            break
    return status
