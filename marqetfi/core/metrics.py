"""Web process figures in ``/metrics`` (django-prometheus serves the default registry), per process.

The queue in front of Django (``marqetfi.core.admission``): how many requests wait, how many
run, how long they waited, how many were turned away with 503 ``server_busy``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEB_REQUESTS_QUEUED = Gauge(
    "marqetfi_web_requests_queued",
    "HTTP requests waiting for a turn to run in Django (WEB_MAX_REQUESTS_IN_FLIGHT are running).",
)
WEB_REQUESTS_IN_FLIGHT = Gauge(
    "marqetfi_web_requests_in_flight", "HTTP requests running in Django (each on a thread of its own)."
)
WEB_QUEUE_WAIT_SECONDS = Histogram(
    "marqetfi_web_queue_wait_seconds",
    "How long an HTTP request waited for its turn to run in Django (0 when it did not wait).",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
WEB_REQUESTS_SHED = Counter(
    "marqetfi_web_requests_shed",
    "HTTP requests answered 503 server_busy after waiting WEB_QUEUE_TIMEOUT seconds for a turn.",
)
