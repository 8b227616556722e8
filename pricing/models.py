from __future__ import annotations

from django.db import models
from django.db.models import Q

from marqetfi.core.models import TimeStampedModel
from providers.base import MarketCategory


class TradingPair(TimeStampedModel):
    """A pair our users trade, whatever venue serves it (``BTCUSD``, ``EURUSD``, ``XAUUSD``).

    Created by the catalogue sync the first time a venue lists the symbol; afterwards the
    descriptive fields and ``active`` belong to operators (the sync never overwrites them).
    """

    class Category(models.TextChoices):
        CRYPTO = MarketCategory.CRYPTO.value, "Crypto"
        FOREX = MarketCategory.FOREX.value, "Forex"
        INDICES = MarketCategory.INDICES.value, "Indices"
        COMMODITIES = MarketCategory.COMMODITIES.value, "Commodities"

    class Hours(models.TextChoices):
        ALWAYS = "24/7", "24/7"
        WEEKDAYS = "weekdays", "Weekdays (closed Friday 21:00 to Sunday 21:00 UTC)"

    symbol = models.CharField(max_length=32, unique=True)
    category = models.CharField(max_length=16, choices=Category.choices)
    base = models.CharField(max_length=16)
    quote = models.CharField(max_length=16)
    display_name = models.CharField(max_length=64, blank=True, default="")
    trading_hours = models.CharField(max_length=16, choices=Hours.choices)
    active = models.BooleanField(
        default=True, help_text="Switched off, the pair is neither listed nor priced."
    )

    class Meta:
        ordering = ("symbol",)
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=[c.value for c in MarketCategory]),
                name="trading_pair_category_known",
            ),
            models.CheckConstraint(
                condition=Q(trading_hours__in=["24/7", "weekdays"]), name="trading_pair_hours_known"
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


class PairListing(TimeStampedModel):
    """How one venue lists a pair: its market id and trading limits, as of the last sync."""

    pair = models.ForeignKey(TradingPair, on_delete=models.CASCADE, related_name="listings")
    provider = models.SlugField(max_length=40)
    venue_symbol = models.CharField(max_length=64, help_text="The venue's market id or name.")
    tick_size = models.DecimalField(max_digits=32, decimal_places=18)
    size_step = models.DecimalField(max_digits=32, decimal_places=18)
    min_collateral = models.DecimalField(max_digits=32, decimal_places=6, help_text="USDC")
    max_leverage = models.DecimalField(max_digits=12, decimal_places=2)
    active = models.BooleanField(default=True, help_text="False once the venue stopped listing the pair.")

    class Meta:
        ordering = ("pair__symbol", "provider")
        constraints = [
            models.UniqueConstraint(fields=("pair", "provider"), name="pair_listing_unique"),
            models.CheckConstraint(
                condition=Q(tick_size__gt=0, size_step__gt=0, min_collateral__gte=0, max_leverage__gte=1),
                name="pair_listing_limits_valid",
            ),
        ]
        indexes = [models.Index(fields=("provider", "active"), name="pair_listing_provider_idx")]

    def __str__(self) -> str:
        return f"{self.pair.symbol} on {self.provider} ({self.venue_symbol})"
