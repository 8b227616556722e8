"""Rate limits counted in Redis, shared by every web process and by the cached-price route.

Each limit is a sliding log, as DRF's: the times of the client's requests within the last
period, here a Redis sorted set per client and scope. The check and the count are one Lua
call, so concurrent requests cannot slip past a limit (DRF's own throttles read a history
list and write it back).
The same script optionally reads cache keys first and counts nothing when one is missing:
the cached-price route answers a hit and counts it in one round trip, and hands a miss to
Django, whose throttles then count it once.

Rates are looked up on each request in the ``throttle_rates`` app setting. Precedence: a
scope an operator set in that setting (an ``AppSetting`` row) wins; every other scope, and
every scope while no row exists, has REST_FRAMEWORK's ``DEFAULT_THROTTLE_RATES`` (so
``override_settings`` works as usual). A change reaches every process within about a
second, without a restart.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request

from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.app_settings.platform import THROTTLE_RATES

if TYPE_CHECKING:  # DRF's views import the throttle classes from its settings
    from rest_framework.views import APIView

KEY_PREFIX: Final = "marqetfi:throttle:"
_PERIOD_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# KEYS: ``ARGV[1]`` keys to read, then one sorted set per window (request times in ms).
# ARGV: the number of keys to read, now in ms, a member unique to this request, then per
# window: limit, length in ms.
# Returns {0} when a key to read is missing (nothing counted), {2, wait_ms} when a window is
# full (nothing counted), else {1, 0, value of each key read} with every window counted.
CONSUME_SCRIPT: Final = """
local reads = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local values = {}
if reads > 0 then
  values = redis.call('MGET', unpack(KEYS, 1, reads))
  for i = 1, reads do
    if not values[i] then return {0} end
  end
end
local wait_ms = 0
for w = 1, #KEYS - reads do
  local key = KEYS[reads + w]
  local limit = tonumber(ARGV[2 + 2 * w])
  local length = tonumber(ARGV[3 + 2 * w])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - length)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    wait_ms = math.max(wait_ms, tonumber(freeing[2]) + length - now, 1)
  end
end
if wait_ms > 0 then return {2, wait_ms} end
for w = 1, #KEYS - reads do
  local key = KEYS[reads + w]
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, tonumber(ARGV[3 + 2 * w]))
end
local answer = {1, 0}
for i = 1, reads do answer[i + 2] = values[i] end
return answer
"""


CONSUME_SHA: Final = hashlib.sha1(CONSUME_SCRIPT.encode(), usedforsecurity=False).hexdigest().encode()


class _Members:
    """Members unique to each request for the windows' sorted sets: a random prefix per process
    (drawn again in a forked child) and a counter; cheaper than a UUID per request."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter)}"


_members = _Members()


@dataclass(frozen=True)
class RateWindow:
    """One limit on one client: ``limit`` requests in any ``seconds``, counted under ``name``."""

    name: str
    limit: int
    seconds: int


@dataclass(frozen=True)
class ConsumeResult:
    """``hit`` is False when a key to read was missing; then nothing was counted."""

    hit: bool
    allowed: bool
    wait_seconds: float
    values: list[bytes]


def consume_call(
    windows: Sequence[RateWindow], *, read_keys: Sequence[str] = (), now: float | None = None
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one ``CONSUME_SCRIPT`` call."""
    now_ms = int((time.time() if now is None else now) * 1000)
    keys: list[str] = [*read_keys, *(f"{KEY_PREFIX}{window.name}" for window in windows)]
    args: list[Any] = [len(read_keys), now_ms, _members.next()]
    for window in windows:
        args += [window.limit, window.seconds * 1000]
    return keys, args


def consume_args(windows: Sequence[RateWindow], read_keys: Sequence[bytes]) -> list[bytes]:
    """``numkeys``, KEYS and ARGV of one ``CONSUME_SCRIPT`` call, already encoded, for a caller
    that packs the command itself (``command_pack(b"EVALSHA", CONSUME_SHA, *args)``); what
    ``consume_call`` hands redis-py, without its per-argument encoding."""
    keys = [*read_keys, *[f"{KEY_PREFIX}{window.name}".encode() for window in windows]]
    args = [b"%d" % len(keys), *keys, b"%d" % len(read_keys), b"%d" % int(time.time() * 1000)]
    args.append(_members.next().encode())
    for window in windows:
        args += [b"%d" % window.limit, b"%d" % (window.seconds * 1000)]
    return args


def consume_result(reply: Sequence[Any]) -> ConsumeResult:
    status = int(reply[0])
    if status == 0:
        return ConsumeResult(hit=False, allowed=False, wait_seconds=0.0, values=[])
    return ConsumeResult(
        hit=True, allowed=status == 1, wait_seconds=int(reply[1]) / 1000, values=list(reply[2:])
    )


def windows_consume(windows: Sequence[RateWindow]) -> ConsumeResult:
    """Count one request against every window, or none if one of them is full."""
    redis = get_redis_connection("default")
    keys, args = consume_call(windows)
    return consume_result(redis.register_script(CONSUME_SCRIPT)(keys=keys, args=args))


def rate_parse(rate: str) -> tuple[int, int]:
    """``"120/min"`` -> (120, 60): DRF's rate notation, the period by its first letter."""
    count, period = rate.split("/")
    return int(count), _PERIOD_SECONDS[period[0]]


def scope_rate(scope: str) -> tuple[int, int] | None:
    """The live (limit, seconds) of a throttle scope, or None when the scope is unlimited."""
    rate = app_setting(THROTTLE_RATES).get(scope)
    return rate_parse(rate) if rate else None


def client_address(forwarded_for: str | None, remote_addr: str | None) -> str:
    """The client's address as DRF identifies it, trusting ``NUM_PROXIES`` hops of X-Forwarded-For."""
    proxies = cast(int | None, settings.REST_FRAMEWORK.get("NUM_PROXIES"))
    if proxies is not None:
        if proxies == 0 or not forwarded_for:
            return remote_addr or ""
        addresses = forwarded_for.split(",")
        return addresses[-min(proxies, len(addresses))].strip()
    return "".join(forwarded_for.split()) if forwarded_for else remote_addr or ""


class _WindowThrottle(throttling.SimpleRateThrottle):
    """DRF's throttle interface (scopes, cache keys, ``wait``) on the shared window counter."""

    _wait_seconds: float = 0.0

    def get_rate(self) -> str | None:
        return app_setting(THROTTLE_RATES).get(self.scope or "")

    def get_ident(self, request: Request) -> str:
        return client_address(request.META.get("HTTP_X_FORWARDED_FOR"), request.META.get("REMOTE_ADDR"))

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        limit, seconds = getattr(self, "num_requests", None), getattr(self, "duration", None)
        if limit is None or seconds is None:
            return True
        result = windows_consume([RateWindow(key, limit, seconds)])
        self._wait_seconds = result.wait_seconds
        return result.allowed

    def wait(self) -> float | None:
        return math.ceil(self._wait_seconds) if self._wait_seconds else None


# DRF's class first: its scope and cache key, then ours for the counting (ScopedRateThrottle
# picks the view's scope in ``allow_request`` before handing over to ours).
class AnonRateThrottle(throttling.AnonRateThrottle, _WindowThrottle):
    pass


class UserRateThrottle(throttling.UserRateThrottle, _WindowThrottle):
    pass


class ScopedRateThrottle(throttling.ScopedRateThrottle, _WindowThrottle):
    pass


class WriteRateThrottle(UserRateThrottle):
    """Requests that change something (POST, PUT, PATCH, DELETE), per user (or client address
    when signed out), at the ``write`` rate: on top of the ``user`` limit that every request
    counts against, since a write costs a venue, a provider or a transaction. Reads are not
    counted here (no Redis call)."""

    scope = "write"

    def allow_request(self, request: Request, view: APIView) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class StaffRateThrottle(UserRateThrottle):
    """Staff endpoints (``/api/v1/admin/``, ``/metrics``), per operator, at the ``admin`` rate."""

    scope = "admin"


class HealthRateThrottle(AnonRateThrottle):
    """``/api/v1/health``, per client address at the ``health`` rate (load balancers probe it
    every few seconds). It fails open when Redis cannot count: health must still answer, to
    report that Redis is down."""

    scope = "health"

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError:
            return True


def login_form_throttled(
    view: Callable[..., HttpResponse], *, scope: str = "auth", username_field: str = "username"
) -> Callable[..., HttpResponse]:
    """A Django sign-in form view (the admin's) limited like the API's sign-in: each POST counts
    against the client's address and against the username tried (so guesses at one account
    from many addresses are limited too), both at the ``scope`` rate. A limited POST answers
    429 with ``Retry-After`` and never reaches the form, so a right password is not let
    through either. Showing the form (GET) is not counted."""

    def throttled(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        rate = scope_rate(scope)
        if request.method != "POST" or rate is None:
            return view(request, *args, **kwargs)
        limit, seconds = rate
        address = client_address(request.META.get("HTTP_X_FORWARDED_FOR"), request.META.get("REMOTE_ADDR"))
        username = str(request.POST.get(username_field, "")).strip().lower()
        windows = [RateWindow(f"{scope}:form:addr:{address}", limit, seconds)]
        if username:
            digest = hashlib.sha256(username.encode()).hexdigest()[:32]
            windows.append(RateWindow(f"{scope}:form:user:{digest}", limit, seconds))
        result = windows_consume(windows)
        if not result.allowed:
            response = HttpResponse(
                "Too many sign-in attempts. Try again later.\n",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(max(1, math.ceil(result.wait_seconds)))
            return response
        return view(request, *args, **kwargs)

    return throttled


def throttle_counters_clear() -> None:
    """Forget every count (tests: each starts with empty windows)."""
    redis = get_redis_connection("default")
    for key in redis.scan_iter(f"{KEY_PREFIX}*", count=1000):
        redis.delete(key)
