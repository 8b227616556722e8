"""Deposits: transfers to users' deposit addresses, found on chain or reported, and the swaps
that turn them into USDC on the platform's settlement chain.

A deposit moves ``detected -> confirming -> quoting -> swapping -> bridging -> completed``
(``failed``, ``refunded`` and ``dropped`` end it otherwise); a deposit already in the
settlement token skips the swap states. Every step is saved before the next starts, with
``next_action_at`` saying when the state machine looks at it again, so a restarted worker
resumes where the last one stopped. Each transition is one ``DepositTransition`` row.

One row per transfer: unique on (chain, transaction hash, log index), the log index being
``-1`` for the native coin a transaction carries.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from marqetfi.core.models import TimeStampedModel

NATIVE_TOKEN = "0x0000000000000000000000000000000000000000"  # noqa: S105 - an address, not a secret
NATIVE_LOG_INDEX = -1
# A uint256 has at most 78 decimal digits.
RAW_DIGITS = 78


def _raw(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=RAW_DIGITS, decimal_places=0, **kwargs)  # type: ignore[arg-type]


def _usdc(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=24, decimal_places=6, **kwargs)  # type: ignore[arg-type]


class DepositStatus(models.TextChoices):
    DETECTED = "detected", "Detected"
    CONFIRMING = "confirming", "Confirming"
    QUOTING = "quoting", "Quoting"
    SWAPPING = "swapping", "Swapping"
    BRIDGING = "bridging", "Bridging"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"
    DROPPED = "dropped", "Dropped (reorganised away)"


TERMINAL_STATUSES = frozenset(
    {DepositStatus.COMPLETED, DepositStatus.FAILED, DepositStatus.REFUNDED, DepositStatus.DROPPED}
)
ACTIVE_STATUSES = frozenset(set(DepositStatus) - TERMINAL_STATUSES)


class DepositSource(models.TextChoices):
    SCAN = "scan", "Found by the chain scanner"
    REPORT = "report", "Reported by the user"


class Deposit(TimeStampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deposits")
    wallet = models.ForeignKey(
        "accounts.Wallet", null=True, blank=True, on_delete=models.SET_NULL, related_name="deposits"
    )
    chain_id = models.BigIntegerField()
    tx_hash = models.CharField(max_length=66)
    log_index = models.IntegerField(help_text="-1 for the native coin a transaction carries")
    block_number = models.BigIntegerField(null=True, blank=True)
    block_hash = models.CharField(max_length=66, blank=True, default="")
    from_address = models.CharField(max_length=42, blank=True, default="")
    to_address = models.CharField(max_length=42)
    token_address = models.CharField(max_length=42, help_text=f"{NATIVE_TOKEN} for the native coin")
    token_symbol = models.CharField(max_length=16)
    token_decimals = models.PositiveSmallIntegerField()
    amount_raw = _raw(help_text="Base units of the received token")
    source = models.CharField(max_length=8, choices=DepositSource.choices)
    status = models.CharField(max_length=16, choices=DepositStatus.choices, default=DepositStatus.DETECTED)
    confirmations = models.PositiveIntegerField(default=0)
    confirmations_required = models.PositiveIntegerField()
    # Set when USDC on the settlement chain is known: the amount credited to the user.
    credited_amount = _usdc(null=True, blank=True)
    credited_at = models.DateTimeField(null=True, blank=True)
    # The ledger posting that credited the user: one at most, whatever retries happen.
    credit_transaction = models.OneToOneField(
        "ledger.LedgerTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    swap_attempts = models.PositiveSmallIntegerField(default=0)
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_reason = models.TextField(blank=True, default="")
    next_action_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Backoff of the step now waiting on a provider (errors, 429s); reset when the step moves on.
    step_failures = models.PositiveSmallIntegerField(default=0)
    resource_version = models.PositiveBigIntegerField(default=1)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("chain_id", "tx_hash", "log_index"), name="deposit_one_per_transfer"
            ),
            models.CheckConstraint(condition=Q(amount_raw__gt=0), name="deposit_amount_positive"),
            models.CheckConstraint(
                condition=Q(credited_amount__isnull=True) | Q(credited_amount__gt=0),
                name="deposit_credit_positive",
            ),
        ]
        indexes = [
            models.Index(
                fields=("next_action_at",),
                condition=Q(status__in=sorted(s.value for s in ACTIVE_STATUSES)),
                name="deposit_due_idx",
            ),
            models.Index(fields=("user", "-created_at"), name="deposit_user_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.chain_id}:{self.tx_hash}#{self.log_index} ({self.status})"

    @property
    def is_native(self) -> bool:
        return self.log_index == NATIVE_LOG_INDEX

    @property
    def amount(self) -> Decimal:
        return Decimal(int(self.amount_raw)).scaleb(-self.token_decimals)


class DepositTransition(models.Model):
    """One step of a deposit's history: from, to, why, and who when an operator did it."""

    deposit = models.ForeignKey(Deposit, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, blank=True, default="")
    to_status = models.CharField(max_length=16)
    reason = models.TextField(blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class SwapStatus(models.TextChoices):
    QUOTED = "quoted", "Quoted"
    APPROVING = "approving", "Approving"
    SENDING = "sending", "Sending (outcome being reconciled)"
    SENT = "sent", "Sent, waiting for LI-FI"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"
    ABANDONED = "abandoned", "Abandoned (never sent)"


class Swap(TimeStampedModel):
    """One quote step of a deposit's conversion: the quote, the approval, the one transaction
    sent for it and what LI-FI said of it. A retry is a new row with a fresh quote."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deposit = models.ForeignKey(Deposit, on_delete=models.CASCADE, related_name="swaps")
    attempt = models.PositiveSmallIntegerField()
    provider = models.CharField(max_length=32, default="lifi")
    status = models.CharField(max_length=16, choices=SwapStatus.choices, default=SwapStatus.QUOTED)
    tool = models.CharField(max_length=64, blank=True, default="")
    quote_id = models.CharField(max_length=200, blank=True, default="")
    quote = models.JSONField(default=dict, blank=True)
    from_chain_id = models.BigIntegerField()
    from_token = models.CharField(max_length=42)
    from_amount_raw = _raw()
    to_chain_id = models.BigIntegerField()
    to_token = models.CharField(max_length=42)
    to_address = models.CharField(max_length=42)
    quoted_to_amount_raw = _raw()
    quoted_to_amount_min_raw = _raw()
    approval_address = models.CharField(max_length=42, blank=True, default="")
    approval_tx_hash = models.CharField(max_length=66, blank=True, default="")
    # The gas station's native coin sent to the deposit wallet before its first transaction.
    gas_topup_tx_hash = models.CharField(max_length=66, blank=True, default="")
    # Recorded before the transaction is handed to the wallet: with the nonce it had, a lost
    # answer is reconciled on chain instead of sending a second transaction.
    sender_address = models.CharField(max_length=42, blank=True, default="")
    sender_nonce = models.BigIntegerField(null=True, blank=True)
    send_started_at = models.DateTimeField(null=True, blank=True)
    send_block = models.BigIntegerField(
        null=True, blank=True, help_text="The chain's head when sending began"
    )
    tx_hash = models.CharField(max_length=66, blank=True, default="")
    provider_status = models.CharField(max_length=16, blank=True, default="")
    provider_substatus = models.CharField(max_length=64, blank=True, default="")
    status_message = models.TextField(blank=True, default="")
    receiving_tx_hash = models.CharField(max_length=66, blank=True, default="")
    received_amount_raw = _raw(null=True, blank=True)
    polls = models.PositiveIntegerField(default=0)
    failure_code = models.CharField(max_length=64, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("deposit", "attempt")
        constraints = [
            models.UniqueConstraint(fields=("deposit", "attempt"), name="swap_attempt_unique"),
            models.UniqueConstraint(
                fields=("from_chain_id", "tx_hash"), condition=~Q(tx_hash=""), name="swap_tx_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"swap {self.attempt} of {self.deposit_id} ({self.status})"


class ChainScanCursor(models.Model):
    """How far the scanner has read a chain: every block up to ``last_block`` was scanned."""

    chain_id = models.BigIntegerField(unique=True)
    last_block = models.BigIntegerField()
    last_block_hash = models.CharField(max_length=66, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain {self.chain_id} @ {self.last_block}"
