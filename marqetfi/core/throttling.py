"""Rate limits counted in the Django cache, i.e. in Redis, so every web process shares them.

DRF's throttles copy the rate table when the class is defined; these look the rate up on
each request, in the ``throttle_rates`` app setting. Precedence: a scope an operator set
in that setting (an ``AppSetting`` row) wins; every other scope, and every scope while no
row exists, has REST_FRAMEWORK's ``DEFAULT_THROTTLE_RATES`` (so ``override_settings``
works as usual). A change reaches every process within about a second, without a restart.
"""

from __future__ import annotations

from rest_framework import throttling

from providers.app_settings import THROTTLE_RATES, app_setting


class _LiveRateMixin(throttling.SimpleRateThrottle):
    def get_rate(self) -> str | None:
        """The rate of this scope: REST_FRAMEWORK's table with the stored scopes laid over it."""
        return app_setting(THROTTLE_RATES).get(self.scope or "")


class AnonRateThrottle(_LiveRateMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_LiveRateMixin, throttling.UserRateThrottle):
    pass


class ScopedRateThrottle(_LiveRateMixin, throttling.ScopedRateThrottle):
    pass
