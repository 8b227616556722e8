from __future__ import annotations

from typing import Any

from celery import shared_task

from trading import idempotency
from trading.services.orders import orders_reconcile as reconcile
from trading.services.positions import protective_native_poll as native_poll
from trading.services.reconciliation import reconciliation_run as reconcile_venues
from trading.triggers.sweep import triggers_sweep as sweep


@shared_task(name="trading.tasks.triggers_sweep", ignore_result=True)
def triggers_sweep() -> dict[str, Any]:
    """Beat, every 5 seconds: fire what the ticks missed and put the trigger index right."""
    return sweep().as_dict()


@shared_task(name="trading.tasks.orders_reconcile", ignore_result=True)
def orders_reconcile() -> int:
    """Beat, every 2 seconds: ask the venues about orders whose outcome we do not know."""
    return reconcile()


@shared_task(name="trading.tasks.idempotent_requests_purge", ignore_result=True)
def idempotent_requests_purge() -> int:
    """Beat, hourly: delete Idempotency-Key records past their lifetime."""
    return idempotency.idempotent_requests_purge()


@shared_task(name="trading.tasks.reconciliation_run", ignore_result=True)
def reconciliation_run() -> dict[str, Any]:
    """Beat, every minute (RECONCILIATION_INTERVAL_SECONDS): every venue's book against ours."""
    return reconcile_venues().as_dict()


@shared_task(name="trading.tasks.protective_native_poll", ignore_result=True)
def protective_native_poll() -> int:
    """Beat, every 15 seconds: positions a venue closed at a stop it holds (``native``)."""
    return native_poll()
