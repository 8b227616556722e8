"""Writing the dashboard's daily rollups (``DailyFigure``).

Rule: a row counts on the UTC day of its own timestamp (sign-up, fill, ledger transaction,
deposit or delivery creation, drift detection), with the status it has when the day is rolled
up. Fills, ledger entries, sign-ups and drifts never arrive late for a closed day (their time
is when they are written); deposits and webhook deliveries change status after their day, so
the nightly run computes the last two closed days again. A status change later than that is not
reflected in the rollups (``daily_figures_recompute`` rebuilds any range on demand).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from django.db import transaction

from backoffice.models import DailyFigure
from backoffice.selectors import daily_figures_compute, daily_figures_missing

RECOMPUTED_DAYS: Final = 2
FILLED_DAYS: Final = 366


def daily_figures_fill(*, first: date, last: date) -> int:
    """Store the rollups of the closed days ``first .. last`` not stored yet: one aggregate
    query per metric over the missing range, grouped by day, and one insert. Concurrent fills
    of the same day are harmless (unique ``(day, metric, key)``, conflicts ignored). Returns
    the number of days rolled up."""
    missing = daily_figures_missing(first=first, last=last)
    if not missing:
        return 0
    wanted = set(missing)
    rows = [row for row in daily_figures_compute(first=missing[0], last=missing[-1]) if row.day in wanted]
    DailyFigure.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(missing)


@transaction.atomic
def daily_figures_recompute(*, first: date, last: date) -> int:
    """Drop and store again the rollups of the days ``first .. last`` (statuses changed since)."""
    DailyFigure.objects.filter(day__gte=first, day__lte=last).delete()
    return daily_figures_fill(first=first, last=last)


def daily_figures_roll(*, today: date) -> int:
    """The nightly run, shortly after midnight (UTC): the last ``RECOMPUTED_DAYS`` closed days
    computed again (yesterday's included), then any closed day of the last ``FILLED_DAYS`` not
    stored yet, so a year's page reads rollups only. Returns the number of days rolled up."""
    yesterday = today - timedelta(days=1)
    rolled = daily_figures_recompute(first=today - timedelta(days=RECOMPUTED_DAYS), last=yesterday)
    return rolled + daily_figures_fill(first=today - timedelta(days=FILLED_DAYS), last=yesterday)
