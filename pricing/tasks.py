from __future__ import annotations

from celery import shared_task

from pricing.services import pairs


@shared_task(name="pricing.tasks.pairs_sync_all", ignore_result=True)
def pairs_sync_all() -> list[str]:
    """Beat, every 10 minutes: refresh the pair catalogue from every venue that is on."""
    return [str(result) for result in pairs.pairs_sync_all()]
