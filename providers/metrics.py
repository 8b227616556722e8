"""Provider health in ``/metrics``: breaker state, calls, failures, error rate, p95 latency.

The figures live in Redis (``providers.health``) and are shared by every process, so each
scraped process reports the same cluster-wide values: aggregate them with ``max``, not ``sum``.
They are read at scrape time, one Redis round trip per provider, never a provider call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from providers import health, registry

logger = logging.getLogger("providers.metrics")

BREAKER_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}
_LABELS = ["provider"]

_registered = False
_registration_lock = threading.Lock()


def _gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=_LABELS)


def _counter(name: str, documentation: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=_LABELS)


@dataclass
class _Families:
    state: GaugeMetricFamily = field(
        default_factory=lambda: _gauge(
            "marqetfi_provider_breaker_state",
            "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
        )
    )
    calls: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "marqetfi_provider_calls", "Calls made to the provider through its breaker."
        )
    )
    failures: CounterMetricFamily = field(
        default_factory=lambda: _counter(
            "marqetfi_provider_failures",
            "Calls that failed in a way that counts against the breaker (timeouts, 429, 5xx).",
        )
    )
    rejected: CounterMetricFamily = field(
        default_factory=lambda: _counter("marqetfi_provider_rejected", "Calls refused by the open breaker.")
    )
    error_ratio: GaugeMetricFamily = field(
        default_factory=lambda: _gauge(
            "marqetfi_provider_error_ratio",
            "Failures per call over the stats window (PROVIDER_STATS_WINDOW_SECONDS).",
        )
    )
    latency_p95: GaugeMetricFamily = field(
        default_factory=lambda: _gauge(
            "marqetfi_provider_latency_p95_seconds",
            "Estimated 95th percentile of call latency over the stats window.",
        )
    )

    def all(self) -> list[Metric]:
        return [getattr(self, family.name) for family in fields(self)]


class ProviderHealthCollector(Collector):
    def describe(self) -> Iterable[Metric]:
        """The metric names without samples, so that registering never touches Redis."""
        return _Families().all()

    def collect(self) -> Iterable[Metric]:
        families = _Families()
        for name in registry.provider_names():
            try:
                stats = health.provider_stats(name)
            except Exception:  # a failed read must not break the whole /metrics page
                logger.warning("provider %s: health figures unavailable for /metrics", name, exc_info=True)
                continue
            families.state.add_metric([name], BREAKER_STATE_VALUES[stats["breaker"]])
            families.calls.add_metric([name], stats["calls_total"])
            families.failures.add_metric([name], stats["failures_total"])
            families.rejected.add_metric([name], stats["rejected_total"])
            families.error_ratio.add_metric([name], stats["error_rate"])
            if stats["latency_ms_p95"] is not None:
                families.latency_p95.add_metric([name], stats["latency_ms_p95"] / 1000)
        return families.all()


def register_collector(target: CollectorRegistry = REGISTRY) -> None:
    """Add the collector to ``target`` once per process; later calls do nothing."""
    global _registered  # noqa: PLW0603 - one registration per process
    with _registration_lock:
        if not _registered:
            target.register(ProviderHealthCollector())
            _registered = True
