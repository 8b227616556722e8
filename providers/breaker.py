"""The circuit breaker every provider call goes through (``call_provider``), kept in Redis.

One breaker per provider is shared by every web, worker, beat and feed process:

- **closed**: calls pass. ``PROVIDER_BREAKER_FAILURE_THRESHOLD`` consecutive failures open it.
- **open**: calls are refused at once with ``ProviderUnavailable`` (nothing is sent to the
  provider) for ``PROVIDER_BREAKER_OPEN_SECONDS``.
- **half-open**: the open period is over. One call at a time may go through as the trial
  (a Redis ``SET NX`` token that expires after ``PROVIDER_BREAKER_TRIAL_SECONDS``, so a
  process that dies mid-trial blocks nothing for long); every other call is still refused.
  The trial's success closes the breaker, its failure opens it for another period. The
  beat task ``providers.tasks.providers_probe`` makes the trial with the adapter's
  ``health_check()`` when no real call came first.

Half-open is not stored: it is "open, and the period is over". Every transition runs in one
Lua script and uses the Redis clock, so processes on different machines agree on it.

What counts as a failure is what says the provider is down: a retryable ``ProviderError``
(timeouts, connection errors, 429, 5xx) and a bare ``TimeoutError`` / ``ConnectionError``.
A non-retryable error (a 4xx such as "wallet not found", a rejected argument) is the
caller's problem: it neither opens nor closes the breaker, nor resets the failure count,
since some of these are raised before anything reaches the provider. The same goes for
exceptions that are not provider errors (our own bugs).

Timeouts and retries with backoff belong to the calls themselves (``providers.http``); one
``call_provider`` is one outcome for the breaker, however many attempts it made.

If Redis itself cannot be reached the breaker fails open: calls go through unrecorded,
since refusing every provider call because the bookkeeping is down would turn a Redis
outage into an outage of every provider.
"""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Literal, ParamSpec, TypeVar

from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError

from providers.errors import ProviderError, ProviderUnavailable

logger = logging.getLogger("providers.breaker")

P = ParamSpec("P")
T = TypeVar("T")

BreakerState = Literal["closed", "open", "half_open"]
Outcome = Literal["success", "failure", "neutral"]

KEY_PREFIX: Final = "marqetfi:breaker:"
BUCKET_SECONDS: Final = 60
# Upper bounds (ms) of the latency histogram kept per minute; the last bucket is unbounded.
LATENCY_BOUNDS_MS: Final = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
HISTOGRAM_FIELDS: Final = (*(f"le_{bound}" for bound in LATENCY_BOUNDS_MS), "le_inf")

# Whether a call may go through: {verdict, ms until a trial may be let through}. Refusals
# are counted here, in the same round trip.
_ACQUIRE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'open' then return {'closed', 0} end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local reopen_ms = tonumber(redis.call('HGET', KEYS[1], 'opened_at_ms') or '0') + tonumber(ARGV[1])
local wait_ms = reopen_ms - now_ms
if wait_ms <= 0 then
  if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then return {'trial', 0} end
  wait_ms = math.max(redis.call('PTTL', KEYS[2]), 0)
end
redis.call('HINCRBY', KEYS[1], 'rejected_total', 1)
redis.call('HINCRBY', KEYS[3], 'rejected', 1)
redis.call('EXPIRE', KEYS[3], ARGV[4])
return {'open', wait_ms}
"""

# Record one call's outcome and move the breaker; returns the transition ('' for none).
# ARGV: outcome, trial token or '', threshold, latency ms, histogram field, bucket ttl, error.
_RECORD = """
local breaker, trial_key, bucket = KEYS[1], KEYS[2], KEYS[3]
local outcome, token, threshold = ARGV[1], ARGV[2], tonumber(ARGV[3])
local latency = tonumber(ARGV[4])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

redis.call('HINCRBY', bucket, 'calls', 1)
redis.call('HINCRBYFLOAT', bucket, 'latency_ms_sum', latency)
redis.call('HINCRBY', bucket, ARGV[5], 1)
if latency > tonumber(redis.call('HGET', bucket, 'latency_ms_max') or '0') then
  redis.call('HSET', bucket, 'latency_ms_max', ARGV[4])
end
redis.call('HINCRBY', breaker, 'calls_total', 1)
if outcome == 'failure' then
  redis.call('HINCRBY', bucket, 'failures', 1)
  redis.call('HINCRBY', breaker, 'failures_total', 1)
  redis.call('HSET', breaker, 'last_error', ARGV[7], 'last_error_at_ms', now_ms)
end
redis.call('EXPIRE', bucket, ARGV[6])

if token ~= '' and redis.call('GET', trial_key) == token then
  redis.call('DEL', trial_key)
  if outcome == 'success' then
    redis.call('HSET', breaker, 'state', 'closed', 'failures', 0)
    redis.call('HDEL', breaker, 'opened_at_ms')
    return 'recovered'
  elseif outcome == 'failure' then
    redis.call('HSET', breaker, 'state', 'open', 'opened_at_ms', now_ms)
    redis.call('HINCRBY', breaker, 'failures', 1)
    return 'reopened'
  end
  return ''
end
if redis.call('HGET', breaker, 'state') == 'open' then return '' end
if outcome == 'success' then
  redis.call('HSET', breaker, 'failures', 0)
elseif outcome == 'failure' then
  if redis.call('HINCRBY', breaker, 'failures', 1) >= threshold then
    redis.call('HSET', breaker, 'state', 'open', 'opened_at_ms', now_ms)
    return 'opened'
  end
end
return ''
"""


def breaker_redis() -> Redis:
    connection: Redis = get_redis_connection("default")
    return connection


def breaker_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}"


def trial_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}:trial"


def bucket_key(name: str, minute: int) -> str:
    return f"{KEY_PREFIX}{name}:stats:{minute}"


def window_minutes() -> int:
    return max(1, int(settings.PROVIDER_STATS_WINDOW_SECONDS) // BUCKET_SECONDS)


def bucket_ttl_seconds() -> int:
    return (window_minutes() + 1) * BUCKET_SECONDS


def milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def redis_text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def datetime_from_ms(value: bytes | str | None) -> datetime | None:
    text = redis_text(value)
    return datetime.fromtimestamp(int(float(text)) / 1000, tz=UTC) if text else None


def state_from(fields: dict[str, str], now_ms: int) -> BreakerState:
    if fields.get("state") != "open":
        return "closed"
    opened_ms = int(float(fields.get("opened_at_ms") or 0))
    if now_ms >= opened_ms + milliseconds(settings.PROVIDER_BREAKER_OPEN_SECONDS):
        return "half_open"
    return "open"


def server_ms(time_reply: tuple[int, int]) -> int:
    seconds, micros = time_reply
    return int(seconds) * 1000 + int(micros) // 1000


def _classify(exc: BaseException) -> Outcome:
    if isinstance(exc, ProviderUnavailable):
        return "neutral"
    if isinstance(exc, ProviderError):
        return "failure" if exc.retryable else "neutral"
    if isinstance(exc, TimeoutError | ConnectionError):
        return "failure"
    return "neutral"


def _histogram_field(latency_ms: float) -> str:
    return HISTOGRAM_FIELDS[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)]


def breaker_state(name: str) -> BreakerState:
    """The breaker state of ``name`` as every process sees it now ("closed" if Redis is down)."""
    connection = breaker_redis()
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hmget(breaker_key(name), ["state", "opened_at_ms"])
            pipe.time()
            (state, opened_at_ms), now = pipe.execute()
    except RedisError:
        logger.warning("provider breaker state of %s unavailable: Redis unreachable", name)
        return "closed"
    fields = {"state": redis_text(state) or "", "opened_at_ms": redis_text(opened_at_ms) or ""}
    return state_from(fields, server_ms(now))


def _acquire(connection: Redis, name: str, token: str) -> tuple[str, float]:
    verdict, wait_ms = connection.register_script(_ACQUIRE)(
        keys=[breaker_key(name), trial_key(name), bucket_key(name, int(time.time()) // BUCKET_SECONDS)],
        args=[
            milliseconds(settings.PROVIDER_BREAKER_OPEN_SECONDS),
            milliseconds(settings.PROVIDER_BREAKER_TRIAL_SECONDS),
            token,
            bucket_ttl_seconds(),
        ],
    )
    return redis_text(verdict) or "closed", int(wait_ms) / 1000


def _record(
    connection: Redis, name: str, *, outcome: Outcome, token: str, latency_ms: float, error: str
) -> str:
    transition = connection.register_script(_RECORD)(
        keys=[breaker_key(name), trial_key(name), bucket_key(name, int(time.time()) // BUCKET_SECONDS)],
        args=[
            outcome,
            token,
            int(settings.PROVIDER_BREAKER_FAILURE_THRESHOLD),
            round(latency_ms, 3),
            _histogram_field(latency_ms),
            bucket_ttl_seconds(),
            error[:500],
        ],
    )
    return redis_text(transition) or ""


def call_provider(name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn(*args, **kwargs)`` through the circuit breaker of provider ``name``.

    Raises ``ProviderUnavailable`` without calling ``fn`` while the breaker is open (or
    half-open with another call making the trial). Otherwise times the call, records its
    outcome (see the module docstring for what counts as a failure) and returns its result
    or re-raises its exception unchanged.
    """
    connection = breaker_redis()
    token = uuid.uuid4().hex
    try:
        verdict, retry_after = _acquire(connection, name, token)
    except RedisError:
        logger.warning("provider breaker of %s unavailable: Redis unreachable, calling anyway", name)
        return fn(*args, **kwargs)
    if verdict == "open":
        raise ProviderUnavailable(name, retry_after=retry_after)
    trial = verdict == "trial"

    outcome: Outcome = "neutral"
    error = ""
    started = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
        outcome = "success"
        return result
    except BaseException as exc:
        outcome = _classify(exc)
        error = str(exc)
        raise
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            transition = _record(
                connection,
                name,
                outcome=outcome,
                token=token if trial else "",
                latency_ms=latency_ms,
                error=error,
            )
        except RedisError:
            logger.warning("provider breaker of %s: outcome not recorded, Redis unreachable", name)
        else:
            _log_transition(name, transition, error)


def _log_transition(name: str, transition: str, error: str) -> None:
    extra = {"provider": name, "breaker_transition": transition}
    if transition == "opened":
        logger.warning("provider %s: circuit opened after repeated failures: %s", name, error, extra=extra)
    elif transition == "reopened":
        logger.warning("provider %s: trial call failed, circuit open again: %s", name, error, extra=extra)
    elif transition == "recovered":
        logger.info("provider %s: trial call succeeded, circuit closed", name, extra=extra)


def breaker_reset(name: str) -> None:
    """Close the breaker of ``name`` and forget its failures (an operator's override; tests)."""
    connection = breaker_redis()
    with connection.pipeline(transaction=True) as pipe:
        pipe.hset(breaker_key(name), mapping={"state": "closed", "failures": 0})
        pipe.hdel(breaker_key(name), "opened_at_ms")
        pipe.delete(trial_key(name))
        pipe.execute()
