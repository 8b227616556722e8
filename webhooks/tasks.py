from __future__ import annotations

from celery import shared_task

from webhooks.services import delivery


@shared_task(name="webhooks.tasks.webhook_delivery_attempt", ignore_result=True)
def webhook_delivery_attempt(delivery_id: str) -> None:
    delivery.delivery_attempt(delivery_id)


@shared_task(name="webhooks.tasks.webhook_deliveries_due", ignore_result=True)
def webhook_deliveries_due() -> int:
    return delivery.deliveries_due_sweep()


@shared_task(name="webhooks.tasks.webhook_recovery_run", ignore_result=True)
def webhook_recovery_run(recovery_id: str) -> None:
    delivery.recovery_run(recovery_id)
