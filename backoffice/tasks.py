from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from backoffice.services import daily_figures_roll


@shared_task(name="backoffice.tasks.daily_figures_roll", ignore_result=True)
def daily_figures_roll_task() -> int:
    """Roll up the closed days of the dashboard (beat, shortly after midnight UTC)."""
    return daily_figures_roll(today=timezone.localdate())
