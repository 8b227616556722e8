from __future__ import annotations

from decimal import Decimal

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q

from marqetfi.core.models import TimeStampedModel


class Provider(TimeStampedModel):
    """A provider the platform knows (from ``settings.PROVIDERS``) and whether it is switched on."""

    name = models.SlugField(max_length=40, unique=True)
    kind = models.CharField(max_length=16)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ("kind", "name")

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ProviderConfig(models.Model):
    """One immutable version of a provider's configuration; exactly one is active.

    ``settings`` holds plain options (URLs, ids, timeouts); ``secrets_encrypted`` holds the
    secret ones as one Fernet token (``FIELD_ENCRYPTION_KEYS``), never shown anywhere.
    A rollback is a new version copied from an old one, so history only grows.
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="configs")
    version = models.PositiveIntegerField()
    settings = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=False)
    comment = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("provider", "-version")
        constraints = [
            models.UniqueConstraint(fields=("provider", "version"), name="provider_config_version_unique"),
            models.UniqueConstraint(
                fields=("provider",), condition=Q(is_active=True), name="provider_config_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider.name} v{self.version}{' (active)' if self.is_active else ''}"


class RoutingRule(TimeStampedModel):
    """Which venues serve a symbol or a whole category, in order of preference."""

    class Match(models.TextChoices):
        SYMBOL = "symbol", "Symbol"
        CATEGORY = "category", "Category"

    match = models.CharField(max_length=16, choices=Match.choices)
    value = models.CharField(max_length=32, help_text="BTCUSD, or crypto / forex / indices / commodities")
    venues = models.JSONField(help_text='Ordered venue names, primary first: ["lighter", "paper"]')
    enabled = models.BooleanField(default=True)
    updated_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("match", "value")
        constraints = [models.UniqueConstraint(fields=("match", "value"), name="routing_rule_unique")]

    def __str__(self) -> str:
        return f"{self.match}={self.value} -> {' > '.join(self.venues or [])}"


class LocalWalletKey(TimeStampedModel):
    """A key of the ``local`` wallet signer (development and demo): encrypted at rest, never served.

    ``idempotency_key`` makes creation safe to retry: the same key returns the same wallet.
    """

    idempotency_key = models.CharField(max_length=200, unique=True)
    address = models.CharField(max_length=42, unique=True)
    encrypted_private_key = models.TextField(help_text="Fernet token under FIELD_ENCRYPTION_KEYS")

    def __str__(self) -> str:
        return self.address


# --- The paper venue's book (providers.venues.paper) ---------------------------------------


class PaperPosition(TimeStampedModel):
    """An open (or closed) position of a paper account: one open row per symbol and side.

    Adding to a position averages its entry; closing part of it releases collateral in
    proportion and books the realised P&L here.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    account_ref = models.CharField(max_length=128)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=8, choices=[("long", "Long"), ("short", "Short")])
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    size = models.DecimalField(max_digits=36, decimal_places=18)
    entry_price = models.DecimalField(max_digits=36, decimal_places=18)
    collateral = models.DecimalField(max_digits=36, decimal_places=18, help_text="USDC")
    leverage = models.DecimalField(max_digits=12, decimal_places=2)
    realized_pnl = models.DecimalField(max_digits=36, decimal_places=18, default=Decimal(0), help_text="USDC")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("account_ref", "symbol", "side"),
                condition=Q(status="open"),
                name="paper_position_one_open_per_side",
            ),
            models.CheckConstraint(
                condition=Q(size__gte=0, collateral__gte=0), name="paper_position_amounts_non_negative"
            ),
        ]
        indexes = [models.Index(fields=("account_ref", "status"), name="paper_position_account_idx")]

    def __str__(self) -> str:
        return f"{self.account_ref} {self.side} {self.size} {self.symbol} ({self.status})"


class PaperOrder(TimeStampedModel):
    """An order sent to the paper venue, kept whatever became of it (rejections included), so
    that a repeat with the same ``client_order_id`` answers with the first result.

    ``size`` is fixed when the order is accepted (collateral x leverage at the fill or limit
    price, down to the pair's size step). A close is an order too (``reduces_position``).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (accepted, executes later)"
        OPEN = "open", "Open"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"

    account_ref = models.CharField(max_length=128)
    client_order_id = models.CharField(max_length=128)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=8, choices=[("long", "Long"), ("short", "Short")])
    type = models.CharField(max_length=8, choices=[("market", "Market"), ("limit", "Limit")])
    reduces_position = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices)
    collateral = models.DecimalField(max_digits=36, decimal_places=18, help_text="USDC")
    leverage = models.DecimalField(max_digits=12, decimal_places=2)
    limit_price = models.DecimalField(max_digits=36, decimal_places=18, null=True, blank=True)
    stop_loss = models.DecimalField(max_digits=36, decimal_places=18, null=True, blank=True)
    take_profit = models.DecimalField(max_digits=36, decimal_places=18, null=True, blank=True)
    size = models.DecimalField(max_digits=36, decimal_places=18, default=Decimal(0))
    filled_size = models.DecimalField(max_digits=36, decimal_places=18, default=Decimal(0))
    avg_fill_price = models.DecimalField(max_digits=36, decimal_places=18, null=True, blank=True)
    reject_reason = models.CharField(max_length=64, blank=True, default="")
    position = models.ForeignKey(
        PaperPosition, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    filled_at = models.DateTimeField(null=True, blank=True)
    executes_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Pending (asynchronous answers): executes when looked up from then on.",
    )

    class Meta:
        ordering = ("created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("account_ref", "client_order_id"), name="paper_order_client_id_unique"
            ),
        ]
        indexes = [
            # Every tick asks for the resting orders of its symbol: only open rows are indexed.
            models.Index(fields=("symbol",), condition=Q(status="open"), name="paper_order_resting_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account_ref} {self.client_order_id} {self.side} {self.symbol} ({self.status})"


# --- The Lighter venue's sub-accounts (providers.venues.lighter) ---------------------------


class LighterSubAccount(TimeStampedModel):
    """The Lighter sub-account a user trades from, under the platform's master account.

    Created on a user's first use (``LighterVenue.ensure_account``): Lighter assigns
    ``account_index``; ``api_key_registered`` turns true once the platform's API key is
    registered in the sub-account (ChangePubKey), after which orders can be signed for it.
    """

    user_ref = models.CharField(max_length=128, unique=True, help_text="Our user id")
    account_index = models.BigIntegerField(unique=True)
    api_key_registered = models.BooleanField(default=False)

    class Meta:
        ordering = ("created_at",)

    def __str__(self) -> str:
        return f"{self.user_ref} -> Lighter account {self.account_index}"
