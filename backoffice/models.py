"""Daily rollups of the dashboard's figures: one row per closed day (UTC), metric and key."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class DailyFigure(models.Model):
    """One aggregate of one closed day: ``count`` and ``amount`` (exact sums, rounded to cents
    only when shown). ``key`` is the venue, deposit status or webhook status, empty otherwise.
    A ``closed`` row marks the day as rolled up (a day without any row has one too), so a day
    with nothing in it is not recomputed on every request."""

    class Metric(models.TextChoices):
        CLOSED = "closed", "day rolled up"
        SIGNUPS = "signups", "sign-ups"
        TRADERS = "traders", "distinct traders with a fill"
        VENUE = "venue", "fills and volume per venue"
        FEES = "fees", "fees taken"
        PNL = "pnl", "platform realized P&L"
        DEPOSITS = "deposits", "deposits per status, USDC credited"
        WEBHOOKS = "webhooks", "webhook deliveries per status"
        DRIFTS = "drifts", "reconciliation drifts found"

    day = models.DateField()
    metric = models.CharField(max_length=12, choices=Metric.choices)
    key = models.CharField(max_length=32, blank=True, default="")
    count = models.BigIntegerField(default=0)
    amount = models.DecimalField(max_digits=56, decimal_places=18, default=Decimal(0))
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("day", "metric", "key"), name="daily_figure_day_metric_key_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.key}: {self.count} / {self.amount}"
