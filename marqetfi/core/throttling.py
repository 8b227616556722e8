"""Rate limits counted in the Django cache, i.e. in Redis, so every web process shares them.

DRF's throttles copy the rate table when the class is defined; these read it on each
request so that a changed setting takes effect without a restart of the class.
"""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings


class _LiveRateMixin(throttling.SimpleRateThrottle):
    def get_rate(self) -> str | None:
        rates: dict[str, str | None] = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]
        return rates.get(self.scope or "")


class AnonRateThrottle(_LiveRateMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_LiveRateMixin, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(_LiveRateMixin, throttling.ScopedRateThrottle):
    pass
