"""Readiness checks: each one timed, critical ones decide the status code.

Providers are reported beside the checks, never as one: an open circuit breaker is shown,
but the web node stays in rotation, since only requests that need that provider fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.utils.module_loading import import_string
from django_redis import get_redis_connection

from marqetfi.celery import app as celery_app


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    critical: bool
    latency_ms: float
    detail: str = ""


def _timed(name: str, critical: bool, probe: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = probe()
        ok = True
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is a failed check
        detail, ok = f"{type(exc).__name__}: {exc}"[:300], False
    return CheckResult(name, ok, critical, round((time.perf_counter() - started) * 1000, 2), detail)


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _redis() -> str:
    get_redis_connection("default").ping()
    return "pong"


def _broker() -> str:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "connected"


def _worker() -> str:
    """Returns as soon as one worker answers; waits the whole timeout only when none does."""
    timeout = settings.HEALTH_WORKER_PING_TIMEOUT
    replies = celery_app.control.ping(timeout=timeout, limit=1)
    if not replies:
        raise RuntimeError(f"no worker answered a ping within {timeout} s")
    return ", ".join(name for reply in replies for name in reply)


def run_checks() -> list[CheckResult]:
    """Database, Redis and broker are critical; a silent worker pool degrades but keeps the
    web node in rotation, since requests that need no background work still succeed."""
    return [
        _timed("database", True, _database),
        _timed("redis", True, _redis),
        _timed("broker", True, _broker),
        _timed("worker", False, _worker),
    ]


_checks_lock = threading.Lock()
_checks_last: tuple[float, list[CheckResult]] | None = None


def checks_cached() -> list[CheckResult]:
    """``run_checks``, run at most once per ``HEALTH_CACHE_SECONDS`` in this process.

    Callers within that window get the last run's result, so a load balancer's probes or a
    flood of anonymous calls cost nothing beyond the first; callers that arrive while a run is
    under way wait for it and share its result (single flight) rather than starting their own.
    A dependency that goes down shows from the first run after the window, at most
    ``HEALTH_CACHE_SECONDS`` plus one run later.
    """
    global _checks_last  # noqa: PLW0603 - the process's one cached result
    window = settings.HEALTH_CACHE_SECONDS
    last = _checks_last
    if last is not None and time.monotonic() - last[0] < window:
        return last[1]
    with _checks_lock:
        last = _checks_last
        if last is not None and time.monotonic() - last[0] < window:
            return last[1]
        results = run_checks()
        _checks_last = (time.monotonic(), results)
        return results


@receiver(setting_changed)
def _checks_forget(*, setting: str, **kwargs: object) -> None:
    """A new window (tests set one) starts without a result."""
    global _checks_last  # noqa: PLW0603
    if setting == "HEALTH_CACHE_SECONDS":
        _checks_last = None


def provider_report() -> dict[str, dict[str, Any]]:
    """Breaker state and call figures per provider, from Redis (no provider is called).

    The report comes from ``settings.HEALTH_PROVIDER_REPORT`` (a dotted path), since the
    kernel knows no app.
    """
    report: dict[str, dict[str, Any]] = import_string(settings.HEALTH_PROVIDER_REPORT)()
    return report
