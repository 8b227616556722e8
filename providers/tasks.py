from __future__ import annotations

from celery import shared_task

from providers import health


@shared_task(name="providers.tasks.providers_probe", ignore_result=True)
def providers_probe() -> dict[str, health.ProbeOutcome]:
    return health.providers_probe_all()
