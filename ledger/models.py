"""The double-entry book of record of what each user may trade with (USDC, 6 decimals).

An account's balance is the sum of its entries. User accounts (``available``, ``margin``)
hold what the user owns, so a credit to the user is positive there; the platform account on
the other side moves the opposite way. Every transaction therefore sums to zero, and so does
the whole ledger. ``balance`` is a cache of the entry sum, written only by
``ledger_transaction_post`` under the row lock (its own, or its caller's); ``check_ledger``
proves the two agree.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from marqetfi.core.models import TimeStampedModel

USDC = "USDC"
AMOUNT_DIGITS = 24
AMOUNT_PLACES = 6
AMOUNT_QUANTUM = Decimal(1).scaleb(-AMOUNT_PLACES)


def _amount(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)  # type: ignore[arg-type]


class TransactionKind:
    """Kinds of transaction in use. The column is free text: other apps add kinds of their own."""

    ADJUSTMENT = "adjustment"
    DEPOSIT = "deposit"
    DEPOSIT_RECEIVE = "deposit_receive"
    ORDER_COLLATERAL_LOCK = "order_collateral_lock"
    ORDER_COLLATERAL_RELEASE = "order_collateral_release"
    POSITION_SETTLE = "position_settle"
    FEE = "fee"
    LIQUIDATION = "liquidation"


class LedgerAccount(TimeStampedModel):
    """A user's ``available`` or ``margin`` USDC, or one of the platform's counterparty accounts."""

    class Kind(models.TextChoices):
        AVAILABLE = "available", "User: available"
        MARGIN = "margin", "User: margin locked"
        DEPOSITS_CLEARING = "deposits_clearing", "Platform: deposits clearing"
        DEPOSITS_RECEIVED = "deposits_received", "Platform: deposits received on chain"
        VENUE = "venue", "Platform: venue"
        FEES = "fees", "Platform: fees"
        REALIZED_PNL = "realized_pnl", "Platform: realized P&L"
        ADJUSTMENTS = "adjustments", "Platform: manual adjustments"

    USER_KINDS = (Kind.AVAILABLE, Kind.MARGIN)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
        help_text="Empty for the platform's accounts.",
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    name = models.CharField(
        max_length=64, blank=True, default="", help_text='The venue key for venue accounts ("paper").'
    )
    balance = _amount(default=Decimal(0))
    currency = models.CharField(max_length=8, default=USDC)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("user", "kind"),
                condition=Q(user__isnull=False),
                name="ledger_account_user_kind_unique",
            ),
            models.UniqueConstraint(
                fields=("kind", "name"),
                condition=Q(user__isnull=True),
                name="ledger_account_platform_kind_name_unique",
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=False, kind__in=("available", "margin"))
                | (Q(user__isnull=True) & ~Q(kind__in=("available", "margin"))),
                name="ledger_account_owner_matches_kind",
            ),
            # The service refuses overdrafts with a clear error; this is the backstop.
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(balance__gte=0),
                name="ledger_account_user_balance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        owner = str(self.user) if self.user_id else "platform"
        return f"{owner}: {self.kind}{f' {self.name}' if self.name else ''}"

    @property
    def is_user_account(self) -> bool:
        return self.user_id is not None


class LedgerTransaction(models.Model):
    """One balanced movement of money; its entries sum to zero. Never changed once written."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(
        max_length=64, db_index=True, help_text="adjustment, deposit, order_collateral_lock, fee, ..."
    )
    reference = models.CharField(
        max_length=200, blank=True, default="", db_index=True, help_text='What caused it ("order:<uuid>").'
    )
    memo = models.TextField(blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The operator who made a manual change; empty for the system's own postings.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.kind} {self.reference or self.id}"


class LedgerEntry(models.Model):
    """One leg of a transaction: a signed amount on one account."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = _amount()

    class Meta:
        verbose_name_plural = "ledger entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_amount_not_zero")]

    def __str__(self) -> str:
        return f"{self.amount:+f} {self.account}"
