from __future__ import annotations

from celery import shared_task

from providers import health


@shared_task(name="providers.tasks.providers_probe", ignore_result=True)
def providers_probe() -> dict[str, health.ProbeOutcome]:
    return health.providers_probe_all()


@shared_task(name="providers.tasks.provider_probe", ignore_result=True)
def provider_probe(name: str) -> health.ProbeOutcome:
    """Probe one provider now (an operator asked, or a config just changed)."""
    return health.provider_probe(name)
