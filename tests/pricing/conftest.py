from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from providers import registry
from tests.pricing.venues import BOOKS, VenueBook

# alpha is the primary crypto venue with beta as its fallback; beta alone serves the rest.
ROUTING = {"crypto": ["alpha", "beta"], "forex": ["beta"], "indices": ["beta"], "commodities": ["beta"]}


def _clean(redis: Any) -> None:
    for pattern in ("marqetfi:price:*", "marqetfi:breaker:alpha*", "marqetfi:breaker:beta*"):
        for key in redis.scan_iter(pattern):
            redis.delete(key)


@pytest.fixture
def venues(redis_conn: Any) -> Iterator[dict[str, VenueBook]]:
    """Two counting venues in place of the real ones, routed by ``ROUTING``; books start empty."""
    books = {"alpha": VenueBook(), "beta": VenueBook()}
    BOOKS.clear()
    BOOKS.update(books)
    catalogue = {name: entry for name, entry in settings.PROVIDERS.items() if entry["kind"] != "venue"}
    for name in books:
        catalogue[name] = {
            "kind": "venue",
            "class": "tests.pricing.venues.CountingVenue",
            "options": {"book": name},
            "secret_fields": [],
        }
    _clean(redis_conn)
    with override_settings(PROVIDERS=catalogue, ROUTING_DEFAULTS=ROUTING):
        registry.reset_cache()
        yield books
    registry.reset_cache()
    _clean(redis_conn)
    BOOKS.clear()
