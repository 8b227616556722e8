"""Thin Celery tasks: beat scans the chains and advances due deposits; a worker runs the steps."""

from __future__ import annotations

from celery import shared_task

from deposits.services import intake, machine


@shared_task(name="deposits.tasks.deposits_scan", ignore_result=True)
def deposits_scan() -> int:
    return sum(result.created for result in intake.deposits_scan_all())


@shared_task(name="deposits.tasks.deposits_advance_due", ignore_result=True)
def deposits_advance_due() -> int:
    """Hand every due deposit to a worker (a deposit another worker holds is skipped there)."""
    due = machine.deposits_due()
    for deposit_id in due:
        deposit_advance.delay(deposit_id)
    return len(due)


@shared_task(name="deposits.tasks.deposit_advance", ignore_result=True)
def deposit_advance(deposit_id: str) -> str | None:
    return machine.deposit_run_steps(deposit_id=deposit_id)
