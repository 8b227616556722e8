from __future__ import annotations

from celery import shared_task

from marqetfi.core import events


@shared_task(name="marqetfi.core.tasks.events_redispatch", ignore_result=True)
def events_redispatch() -> int:
    return events.events_redispatch()
