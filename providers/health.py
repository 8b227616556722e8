"""Provider health: call statistics from the breaker's Redis buckets, the probe, the report.

The circuit breaker itself, and ``call_provider`` that every provider call goes through,
live in ``providers.breaker``; this module reads what it records.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Literal, TypedDict

from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

from providers import registry
from providers.breaker import (
    BUCKET_SECONDS,
    HISTOGRAM_FIELDS,
    KEY_PREFIX,
    LATENCY_BOUNDS_MS,
    BreakerState,
    breaker_key,
    breaker_redis,
    breaker_state,
    bucket_key,
    call_provider,
    datetime_from_ms,
    milliseconds,
    redis_text,
    server_ms,
    state_from,
    window_minutes,
)
from providers.errors import ProviderError, ProviderUnavailable

logger = logging.getLogger("providers.health")


class ProviderStats(TypedDict):
    """What ``provider_stats`` reports; counts and latencies cover the last ``window_seconds``.

    ``state`` is ``breaker``, or "unconfigured" when the latest probe found the provider
    not configured (and its breaker is closed).
    """

    state: str
    breaker: BreakerState
    calls: int
    failures: int
    rejected: int
    error_rate: float
    latency_ms_avg: float | None
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    consecutive_failures: int
    opened_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    probed_at: datetime | None
    probe_outcome: str | None
    probe_detail: str | None
    calls_total: int
    failures_total: int
    rejected_total: int
    window_seconds: int


def _probe_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}:probe"


def _quantile(histogram: list[int], maximum: float, q: float) -> float | None:
    """Estimate the ``q`` quantile from per-bucket counts (linear within a bucket, as
    Prometheus' ``histogram_quantile``), capped by the largest latency seen."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    cumulative = 0
    for index, count in enumerate(histogram):
        if count and cumulative + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else maximum
            estimate = lower + (upper - lower) * (rank - cumulative) / count
            return round(min(estimate, maximum), 3)
        cumulative += count
    return round(maximum, 3)  # pragma: no cover - the loop always reaches the rank


def provider_stats(name: str) -> ProviderStats:
    """Breaker state and call figures of ``name`` over the sliding window, read from Redis
    only (no provider call). Raises ``RedisError`` when Redis cannot be reached."""
    current_minute = int(time.time()) // BUCKET_SECONDS
    minutes = range(current_minute - window_minutes() + 1, current_minute + 1)
    connection = breaker_redis()
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(breaker_key(name))
        pipe.time()
        for minute in minutes:
            pipe.hgetall(bucket_key(name, minute))
        breaker_raw, now, *buckets_raw = pipe.execute()

    fields: dict[str, str] = {redis_text(k) or "": redis_text(v) or "" for k, v in breaker_raw.items()}
    calls = failures = rejected = 0
    latency_sum, latency_max = 0.0, 0.0
    histogram = [0] * len(HISTOGRAM_FIELDS)
    for raw in buckets_raw:
        bucket: dict[str, str] = {redis_text(k) or "": redis_text(v) or "" for k, v in raw.items()}
        calls += int(bucket.get("calls", 0))
        failures += int(bucket.get("failures", 0))
        rejected += int(bucket.get("rejected", 0))
        latency_sum += float(bucket.get("latency_ms_sum", 0))
        latency_max = max(latency_max, float(bucket.get("latency_ms_max", 0)))
        for index, field in enumerate(HISTOGRAM_FIELDS):
            histogram[index] += int(bucket.get(field, 0))

    breaker = state_from(fields, server_ms(now))
    unconfigured = breaker == "closed" and fields.get("probe_outcome") == "unconfigured"
    return ProviderStats(
        state="unconfigured" if unconfigured else breaker,
        breaker=breaker,
        calls=calls,
        failures=failures,
        rejected=rejected,
        error_rate=round(failures / calls, 4) if calls else 0.0,
        latency_ms_avg=round(latency_sum / calls, 3) if calls else None,
        latency_ms_p50=_quantile(histogram, latency_max, 0.5),
        latency_ms_p95=_quantile(histogram, latency_max, 0.95),
        consecutive_failures=int(fields.get("failures") or 0),
        opened_at=datetime_from_ms(fields.get("opened_at_ms")) if fields.get("state") == "open" else None,
        last_error=fields.get("last_error") or None,
        last_error_at=datetime_from_ms(fields.get("last_error_at_ms")),
        probed_at=datetime_from_ms(fields.get("probed_at_ms")),
        probe_outcome=fields.get("probe_outcome") or None,
        probe_detail=fields.get("probe_detail") or None,
        calls_total=int(fields.get("calls_total") or 0),
        failures_total=int(fields.get("failures_total") or 0),
        rejected_total=int(fields.get("rejected_total") or 0),
        window_seconds=window_minutes() * BUCKET_SECONDS,
    )


# --- Probe --------------------------------------------------------------------------------

ProbeOutcome = Literal["ok", "failed", "refused", "unconfigured", "error"]


def _probe_record(name: str, outcome: ProbeOutcome, detail: str = "") -> None:
    breaker_redis().hset(
        breaker_key(name),
        mapping={
            "probed_at_ms": round(time.time() * 1000),
            "probe_outcome": outcome,
            "probe_detail": detail[:500],
        },
    )


def provider_probe(name: str) -> ProbeOutcome:
    """Run ``name``'s ``health_check()`` through its breaker now and record the outcome.

    "unconfigured" (no adapter can be built from the configuration) and "error" (the adapter
    could not be built for another reason) never touch the breaker; "refused" means the
    breaker is open, or another call holds the half-open trial.
    """
    outcome: ProbeOutcome
    detail = ""
    try:
        adapter = registry.adapter(name)
    except registry.ProviderNotConfigured as exc:
        outcome, detail = "unconfigured", exc.message
    except Exception as exc:  # a broken adapter must not stop the other probes
        outcome, detail = "error", f"{type(exc).__name__}: {exc}"
        logger.exception("provider %s: adapter could not be built for the probe", name)
    else:
        try:
            call_provider(name, adapter.health_check)
            outcome = "ok"
        except ProviderUnavailable as exc:
            outcome, detail = "refused", exc.message
        except ProviderError as exc:
            outcome, detail = "failed", str(exc)
        except Exception as exc:  # likewise: report it and go on with the others
            outcome, detail = "error", f"{type(exc).__name__}: {exc}"
            logger.exception("provider %s: health check crashed", name)
    _probe_record(name, outcome, detail)
    return outcome


def _probe_due(connection: Redis, name: str) -> bool:
    """True for the one caller per ``PROVIDER_PROBE_INTERVAL_SECONDS`` that should probe."""
    interval_ms = milliseconds(settings.PROVIDER_PROBE_INTERVAL_SECONDS)
    return bool(connection.set(_probe_key(name), "1", nx=True, px=interval_ms))


def providers_probe_all() -> dict[str, ProbeOutcome]:
    """Probe every enabled provider that needs it; returns the outcome per provider probed.

    A half-open breaker is probed at once (the probe is its trial); a closed one once per
    ``PROVIDER_PROBE_INTERVAL_SECONDS`` across all processes; an open one is left alone
    until its open period is over. Providers are probed one after another, so a slow one
    delays the rest by at most its adapter's timeouts.
    """
    connection = breaker_redis()
    outcomes: dict[str, ProbeOutcome] = {}
    for name in registry.provider_names():
        if not registry.provider_enabled(name):
            continue
        state = breaker_state(name)
        if state == "open" or (state == "closed" and not _probe_due(connection, name)):
            continue
        outcomes[name] = provider_probe(name)
    return outcomes


def providers_health() -> dict[str, dict[str, Any]]:
    """Per known provider, what ``/api/v1/health`` shows: read from Redis and the registry's
    per-process configuration cache, never from the provider. A part that cannot be read is
    reported as an ``error`` rather than failing the whole report; once Redis has failed it
    is not asked again for the remaining providers, so timeouts do not stack up.

    The endpoint is public, so the providers' own error messages (which may name wallets or
    paths) stay out of it; operators find them in ``provider_stats`` (admin).
    """
    report: dict[str, dict[str, Any]] = {}
    redis_error: str | None = None
    for name in registry.provider_names():
        if redis_error is not None:
            report[name] = {"error": redis_error}
            continue
        try:
            stats = provider_stats(name)
        except RedisError as exc:
            redis_error = f"{type(exc).__name__}: {exc}"[:300]
            report[name] = {"error": redis_error}
            continue
        entry: dict[str, Any] = {}
        try:
            entry["enabled"] = registry.provider_enabled(name)
            entry["configured"] = not registry.missing_options(name)
        except Exception as exc:  # noqa: BLE001 - the health report must always render
            entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
        report[name] = {
            **entry,
            "state": stats["breaker"],
            "error_rate": stats["error_rate"],
            "calls": stats["calls"],
            "latency_ms_p95": stats["latency_ms_p95"],
            "opened_at": stats["opened_at"],
            "probed_at": stats["probed_at"],
            "probe_outcome": stats["probe_outcome"],
        }
    return report
