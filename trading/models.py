"""Orders, positions, fills, protective orders (triggers), risk limits and idempotent replies.

Amounts of USDC have 6 decimals; prices and sizes keep 18 (a pair's tick and step decide
what is valid, not the column). Every row a client sees carries ``resource_version``,
bumped on each change, so a client applies an update only if it is newer.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from marqetfi.core.models import TimeStampedModel

USDC_DIGITS = 24
USDC_PLACES = 6
PRICE_DIGITS = 36
PRICE_PLACES = 18


def _usdc(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=USDC_DIGITS, decimal_places=USDC_PLACES, **kwargs)  # type: ignore[arg-type]


def _price(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=PRICE_DIGITS, decimal_places=PRICE_PLACES, **kwargs)  # type: ignore[arg-type]


class Side(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


class Order(TimeStampedModel):
    """A trader's order: to open (or add to) a position, or to close one (``purpose``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        OPEN = "open", "Open (resting)"
        PARTIALLY_FILLED = "partially_filled", "Partially filled"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        UNKNOWN = "unknown", "Unknown (venue did not answer)"

    class Type(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"

    class Purpose(models.TextChoices):
        OPEN = "open", "Open or increase"
        CLOSE = "close", "Close"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=64, blank=True, default="")
    terms_hash = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Fingerprint of the terms asked for: a reused client_order_id must ask the same.",
    )
    symbol = models.CharField(max_length=32)
    category = models.CharField(max_length=16)
    side = models.CharField(max_length=8, choices=Side.choices)
    type = models.CharField(max_length=8, choices=Type.choices)
    purpose = models.CharField(max_length=8, choices=Purpose.choices, default=Purpose.OPEN)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    collateral = _usdc(default=Decimal(0))
    leverage = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(1))
    price = _price(null=True, blank=True, help_text="Limit price.")
    size = _price(null=True, blank=True, help_text="Close orders: the size to close (null: all).")
    stop_loss = _price(null=True, blank=True)
    take_profit = _price(null=True, blank=True)
    trailing_stop = models.JSONField(
        null=True, blank=True, help_text='{"percent": "2"} or {"distance": "500"}'
    )
    rounding = models.CharField(max_length=8, blank=True, default="")
    fee_reserved = _usdc(default=Decimal(0), help_text="Fee locked with the collateral until the fill.")
    provider = models.CharField(max_length=40, blank=True, default="")
    routing = models.JSONField(default=dict, blank=True)
    venue_order_id = models.CharField(max_length=128, blank=True, default="")
    venue_client_order_id = models.CharField(
        max_length=128,
        blank=True,
        default="",
        help_text="What the venue knows the order by, when not our id (a close it named itself).",
    )
    next_poll_at = models.DateTimeField(
        null=True, blank=True, help_text="Pending at the venue: when to ask it about the order next."
    )
    poll_attempts = models.PositiveIntegerField(default=0)
    reject_code = models.CharField(max_length=64, blank=True, default="")
    reject_reason = models.TextField(blank=True, default="")
    filled_size = _price(default=Decimal(0))
    avg_fill_price = _price(null=True, blank=True)
    fee = _usdc(default=Decimal(0))
    position = models.ForeignKey(
        "Position", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    closed_by = models.CharField(
        max_length=32, blank=True, default="", help_text="Close orders: trader, stop_loss, take_profit, ..."
    )
    resource_version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("user", "client_order_id"),
                condition=~Q(client_order_id=""),
                name="order_client_order_id_unique",
            ),
            models.CheckConstraint(condition=Q(collateral__gte=0), name="order_collateral_not_negative"),
        ]
        indexes = [
            models.Index(fields=("user", "status")),
            models.Index(fields=("symbol", "status")),
            models.Index(fields=("status", "next_poll_at"), name="order_status_next_poll"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.side} {self.symbol} ({self.status})"


class Position(TimeStampedModel):
    """One open position per user, symbol, side and venue; orders on the same add to it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSING = "closing", "Closing (a close is pending at the venue)"
        CLOSED = "closed", "Closed"
        LIQUIDATED = "liquidated", "Liquidated"

    LIVE = (Status.OPEN, Status.CLOSING)  # still held: a pending close may fail or be partial

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="positions")
    symbol = models.CharField(max_length=32)
    category = models.CharField(max_length=16)
    side = models.CharField(max_length=8, choices=Side.choices)
    provider = models.CharField(max_length=40)
    account_ref = models.CharField(max_length=128, blank=True, default="")
    venue_position_id = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    size = _price()
    entry_price = _price()
    collateral = _usdc()
    leverage = models.DecimalField(max_digits=12, decimal_places=2)
    liquidation_price = _price(null=True, blank=True)
    liquidation_level = models.DecimalField(
        max_digits=8, decimal_places=4, help_text="Share of collateral left at which it is liquidated."
    )
    margin_call_level = models.DecimalField(max_digits=8, decimal_places=4)
    margin_called_at = models.DateTimeField(null=True, blank=True)
    realized_pnl = _usdc(default=Decimal(0))
    fees_paid = _usdc(default=Decimal(0))
    closed_at = models.DateTimeField(null=True, blank=True)
    resource_version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("user", "symbol", "side", "provider"),
                condition=Q(status__in=("open", "closing")),
                name="position_one_open_per_market",
            ),
            models.CheckConstraint(condition=Q(size__gte=0), name="position_size_not_negative"),
            models.CheckConstraint(condition=Q(collateral__gte=0), name="position_collateral_not_negative"),
        ]
        indexes = [
            models.Index(fields=("user", "status")),
            models.Index(fields=("symbol", "status")),
            # Reconciliation reads each venue account's positions (and their native stops).
            models.Index(fields=("provider", "account_ref"), name="position_provider_account"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.size} {self.symbol} ({self.status})"

    @property
    def notional_at_entry(self) -> Decimal:
        return self.size * self.entry_price

    def pnl_at(self, price: Decimal) -> Decimal:
        """Profit (negative: loss) in USDC if closed at ``price``, before fees."""
        move = price - self.entry_price
        return (move if self.side == Side.LONG else -move) * self.size


class Fill(TimeStampedModel):
    """An execution (``GET /trades``): what was bought or sold, at what price, with what fee and P&L."""

    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        CLOSE = "close", "Close"
        LIQUIDATION = "liquidation", "Liquidation"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="fills")
    position = models.ForeignKey(Position, on_delete=models.PROTECT, related_name="fills")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=8, choices=Side.choices, help_text="The position's side.")
    provider = models.CharField(max_length=40)
    size = _price()
    price = _price()
    fee = _usdc(default=Decimal(0))
    realized_pnl = _usdc(default=Decimal(0))

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=("user", "created_at")),
            # The platform's figures over a period (the admin dashboard, analytics).
            models.Index(fields=("created_at",), name="fill_created_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.size} {self.symbol} @ {self.price}"


class ProtectiveOrder(TimeStampedModel):
    """A stop-loss, take-profit or trailing stop on a position; SL and TP of a position form an OCO pair.

    The platform arms two more on every open position, at the prices where its loss reaches
    the margin-call and the liquidation level: ``margin_call`` warns (``risk.margin_call``),
    ``liquidation`` closes it (``risk.liquidation``). They fire through the same engine.
    """

    class Kind(models.TextChoices):
        STOP_LOSS = "stop_loss", "Stop-loss"
        TAKE_PROFIT = "take_profit", "Take-profit"
        TRAILING_STOP = "trailing_stop", "Trailing stop"
        MARGIN_CALL = "margin_call", "Margin call (platform)"
        LIQUIDATION = "liquidation", "Liquidation (platform)"

    TRADER_KINDS = (Kind.STOP_LOSS, Kind.TAKE_PROFIT, Kind.TRAILING_STOP)
    RISK_KINDS = (Kind.MARGIN_CALL, Kind.LIQUIDATION)

    class Status(models.TextChoices):
        ARMED = "armed", "Armed"
        FIRED = "fired", "Fired"
        CANCELLED = "cancelled", "Cancelled"

    class ExecutionMode(models.TextChoices):
        NATIVE = "native", "At the venue"
        SYNTHETIC = "synthetic", "By our trigger engine"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    position = models.ForeignKey(Position, on_delete=models.PROTECT, related_name="protective_orders")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=8, choices=Side.choices, help_text="The position's side.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ARMED)
    execution_mode = models.CharField(
        max_length=12, choices=ExecutionMode.choices, default=ExecutionMode.SYNTHETIC
    )
    trigger_price = _price()
    trail_percent = models.DecimalField(max_digits=8, decimal_places=4, null=True, blank=True)
    trail_distance = _price(null=True, blank=True)
    best_price = _price(null=True, blank=True, help_text="Trailing: the best price since arming.")
    oco_group = models.UUIDField(null=True, blank=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    fired_price = _price(null=True, blank=True)
    close_order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    venue_client_order_id = models.CharField(
        max_length=128, blank=True, default="", help_text="Native: the client id of its venue trigger order."
    )
    venue_order_id = models.CharField(
        max_length=128, blank=True, default="", help_text="Native: the venue's id of its trigger order."
    )

    class Meta:
        ordering = ("created_at",)
        indexes = [models.Index(fields=("symbol", "status")), models.Index(fields=("position", "status"))]
        constraints = [
            models.UniqueConstraint(
                fields=("position", "kind"), condition=Q(status="armed"), name="protective_one_armed_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.symbol} @ {self.trigger_price} ({self.status})"


class RiskLimit(TimeStampedModel):
    """Pre-trade limits: global (no user, no symbol), per pair, per user, or per user and pair.

    For each limit the most specific row that sets it wins (user + pair, user, pair, global);
    a limit no row sets comes from the ``risk_defaults`` app setting (leverage) or is unlimited.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="risk_limits"
    )
    symbol = models.CharField(max_length=32, blank=True, default="", help_text="Blank: every pair.")
    max_leverage = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    max_position_notional = _usdc(null=True, blank=True, help_text="USDC, per position (size x price).")
    max_total_notional = _usdc(null=True, blank=True, help_text="USDC, all open positions of the user.")
    max_open_positions = models.PositiveIntegerField(null=True, blank=True)
    liquidation_level = models.DecimalField(
        max_digits=8,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Maintenance margin: share of collateral left at which positions are liquidated.",
    )
    note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("user", "symbol"), name="risk_limit_one_per_scope", nulls_distinct=False
            ),
            models.CheckConstraint(
                condition=Q(max_leverage__isnull=True) | Q(max_leverage__gte=1),
                name="risk_limit_leverage_at_least_one",
            ),
        ]

    def __str__(self) -> str:
        who = self.user_id or "everyone"
        return f"limits for {who} on {self.symbol or 'every pair'}"


class IdempotentRequest(models.Model):
    """The first answer to a write sent with an ``Idempotency-Key``, replayed for retries
    until it expires (``IDEMPOTENCY_KEY_TTL_SECONDS`` after ``created_at``). No answer yet
    (``status_code`` null) means the request is running, or its process died with it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=128)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("user", "key"), name="idempotent_request_key_unique")]
        indexes = [models.Index(fields=("created_at",), name="idempotent_request_created")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


class ReconciliationDrift(TimeStampedModel):
    """A difference between a venue's book and ours, found by reconciliation.

    One open row per (venue, account, kind, symbol, our ref, venue ref): found again, it counts one
    more ``occurrences``; no longer found, it is resolved by reconciliation itself. A drift
    repaired on the spot (an order the venue filled while we still waited) is ``repaired``.
    """

    class Kind(models.TextChoices):
        MISSING_AT_VENUE = "missing_at_venue", "Position missing at the venue"
        EXTRA_AT_VENUE = "extra_at_venue", "Position at the venue only"
        SIZE_MISMATCH = "size_mismatch", "Position size differs"
        PRICE_MISMATCH = "price_mismatch", "Position entry price differs"
        ORDER_MISSING_AT_VENUE = "order_missing_at_venue", "Order missing at the venue"
        ORDER_EXTRA_AT_VENUE = "order_extra_at_venue", "Order at the venue only"
        ORDER_FILLED_AT_VENUE = "order_filled_at_venue", "Order filled at the venue"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REPAIRED = "repaired", "Repaired"
        RESOLVED = "resolved", "Resolved"

    venue = models.CharField(max_length=40)
    account_ref = models.CharField(max_length=128, blank=True, default="")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    symbol = models.CharField(max_length=32, blank=True, default="")
    our_ref = models.CharField(max_length=128, blank=True, default="", help_text="Our position or order id.")
    venue_ref = models.CharField(
        max_length=128, blank=True, default="", help_text="The venue's position or order id."
    )
    details = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    detected_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ("-detected_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("venue", "account_ref", "kind", "symbol", "our_ref", "venue_ref"),
                condition=Q(status="open"),
                name="reconciliation_drift_one_open",
            ),
        ]
        indexes = [
            models.Index(fields=("venue", "status")),
            models.Index(fields=("status", "detected_at")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.venue} ({self.status})"


class VenueReconciliation(models.Model):
    """Where reconciliation of one venue stands: its last run and what that run found."""

    venue = models.CharField(max_length=40, primary_key=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_ok_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    accounts_checked = models.PositiveIntegerField(default=0)
    drifts_found = models.PositiveIntegerField(default=0)
    drifts_repaired = models.PositiveIntegerField(default=0)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("venue",)

    def __str__(self) -> str:
        return f"reconciliation of {self.venue}"
