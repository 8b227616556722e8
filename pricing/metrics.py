"""Price cache figures in ``/metrics`` (django-prometheus serves the default registry).

Counted per process, per symbol category; the hit ratio is a query away:
``sum(rate(marqetfi_price_cache_hits_total[5m])) / (sum(rate(marqetfi_price_cache_hits_total[5m]))
+ sum(rate(marqetfi_price_cache_misses_total[5m])))``.
"""

from __future__ import annotations

from prometheus_client import Counter

from providers.base import MarketCategory

PRICE_CACHE_HITS = Counter(
    "marqetfi_price_cache_hits", "Prices answered from the Redis cache, per symbol.", ["category"]
)
PRICE_CACHE_MISSES = Counter(
    "marqetfi_price_cache_misses",
    "Prices not in the cache (or older than the max_age_ms asked for) that went to a venue, per symbol.",
    ["category"],
)
PRICE_FAST_PATH_ANSWERS = Counter(
    "marqetfi_price_fast_path_answers",
    "Price reads answered by the cached-price route in front of Django (not in django_http_* figures).",
)

# Every category shows from the first scrape, at zero, so ratios never divide by a missing series.
for _category in MarketCategory:
    PRICE_CACHE_HITS.labels(category=_category.value)
    PRICE_CACHE_MISSES.labels(category=_category.value)
