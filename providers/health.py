"""Provider health: a circuit breaker per provider kept in Redis, call statistics, the probe.

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
from typing import Any, Final, Literal, ParamSpec, TypedDict, TypeVar

from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError

from providers import registry
from providers.errors import ProviderError

logger = logging.getLogger("providers.health")

P = ParamSpec("P")
T = TypeVar("T")

BreakerState = Literal["closed", "open", "half_open"]
Outcome = Literal["success", "failure", "neutral"]

KEY_PREFIX: Final = "marqetfi:breaker:"
BUCKET_SECONDS: Final = 60
# Upper bounds (ms) of the latency histogram kept per minute; the last bucket is unbounded.
LATENCY_BOUNDS_MS: Final = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
_HISTOGRAM_FIELDS: Final = (*(f"le_{bound}" for bound in LATENCY_BOUNDS_MS), "le_inf")

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


class ProviderUnavailable(ProviderError):
    """The provider's circuit breaker is open: the call was refused without reaching it.

    ``retry_after`` is the number of seconds until the breaker lets a trial call through.
    """

    def __init__(self, provider: str, *, retry_after: float = 0.0) -> None:
        super().__init__(provider, "circuit open", retryable=True)
        self.retry_after = retry_after


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


def _redis() -> Redis:
    connection: Redis = get_redis_connection("default")
    return connection


def _breaker_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}"


def _trial_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}:trial"


def _probe_key(name: str) -> str:
    return f"{KEY_PREFIX}{name}:probe"


def _bucket_key(name: str, minute: int) -> str:
    return f"{KEY_PREFIX}{name}:stats:{minute}"


def _window_minutes() -> int:
    return max(1, int(settings.PROVIDER_STATS_WINDOW_SECONDS) // BUCKET_SECONDS)


def _bucket_ttl_seconds() -> int:
    return (_window_minutes() + 1) * BUCKET_SECONDS


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _datetime_from_ms(value: bytes | str | None) -> datetime | None:
    text = _text(value)
    return datetime.fromtimestamp(int(float(text)) / 1000, tz=UTC) if text else None


def _state_from(fields: dict[str, str], now_ms: int) -> BreakerState:
    if fields.get("state") != "open":
        return "closed"
    opened_ms = int(float(fields.get("opened_at_ms") or 0))
    if now_ms >= opened_ms + _ms(settings.PROVIDER_BREAKER_OPEN_SECONDS):
        return "half_open"
    return "open"


def _server_ms(time_reply: tuple[int, int]) -> int:
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
    return _HISTOGRAM_FIELDS[bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)]


def breaker_state(name: str) -> BreakerState:
    """The breaker state of ``name`` as every process sees it now ("closed" if Redis is down)."""
    connection = _redis()
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hmget(_breaker_key(name), ["state", "opened_at_ms"])
            pipe.time()
            (state, opened_at_ms), now = pipe.execute()
    except RedisError:
        logger.warning("provider breaker state of %s unavailable: Redis unreachable", name)
        return "closed"
    fields = {"state": _text(state) or "", "opened_at_ms": _text(opened_at_ms) or ""}
    return _state_from(fields, _server_ms(now))


def _acquire(connection: Redis, name: str, token: str) -> tuple[str, float]:
    verdict, wait_ms = connection.register_script(_ACQUIRE)(
        keys=[_breaker_key(name), _trial_key(name), _bucket_key(name, int(time.time()) // BUCKET_SECONDS)],
        args=[
            _ms(settings.PROVIDER_BREAKER_OPEN_SECONDS),
            _ms(settings.PROVIDER_BREAKER_TRIAL_SECONDS),
            token,
            _bucket_ttl_seconds(),
        ],
    )
    return _text(verdict) or "closed", int(wait_ms) / 1000


def _record(
    connection: Redis, name: str, *, outcome: Outcome, token: str, latency_ms: float, error: str
) -> str:
    transition = connection.register_script(_RECORD)(
        keys=[_breaker_key(name), _trial_key(name), _bucket_key(name, int(time.time()) // BUCKET_SECONDS)],
        args=[
            outcome,
            token,
            int(settings.PROVIDER_BREAKER_FAILURE_THRESHOLD),
            round(latency_ms, 3),
            _histogram_field(latency_ms),
            _bucket_ttl_seconds(),
            error[:500],
        ],
    )
    return _text(transition) or ""


def call_provider(name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn(*args, **kwargs)`` through the circuit breaker of provider ``name``.

    Raises ``ProviderUnavailable`` without calling ``fn`` while the breaker is open (or
    half-open with another call making the trial). Otherwise times the call, records its
    outcome (see the module docstring for what counts as a failure) and returns its result
    or re-raises its exception unchanged.
    """
    connection = _redis()
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
    minutes = range(current_minute - _window_minutes() + 1, current_minute + 1)
    connection = _redis()
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(_breaker_key(name))
        pipe.time()
        for minute in minutes:
            pipe.hgetall(_bucket_key(name, minute))
        breaker_raw, now, *buckets_raw = pipe.execute()

    fields: dict[str, str] = {_text(k) or "": _text(v) or "" for k, v in breaker_raw.items()}
    calls = failures = rejected = 0
    latency_sum, latency_max = 0.0, 0.0
    histogram = [0] * len(_HISTOGRAM_FIELDS)
    for raw in buckets_raw:
        bucket: dict[str, str] = {_text(k) or "": _text(v) or "" for k, v in raw.items()}
        calls += int(bucket.get("calls", 0))
        failures += int(bucket.get("failures", 0))
        rejected += int(bucket.get("rejected", 0))
        latency_sum += float(bucket.get("latency_ms_sum", 0))
        latency_max = max(latency_max, float(bucket.get("latency_ms_max", 0)))
        for index, field in enumerate(_HISTOGRAM_FIELDS):
            histogram[index] += int(bucket.get(field, 0))

    breaker = _state_from(fields, _server_ms(now))
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
        opened_at=_datetime_from_ms(fields.get("opened_at_ms")) if fields.get("state") == "open" else None,
        last_error=fields.get("last_error") or None,
        last_error_at=_datetime_from_ms(fields.get("last_error_at_ms")),
        probed_at=_datetime_from_ms(fields.get("probed_at_ms")),
        probe_outcome=fields.get("probe_outcome") or None,
        probe_detail=fields.get("probe_detail") or None,
        calls_total=int(fields.get("calls_total") or 0),
        failures_total=int(fields.get("failures_total") or 0),
        rejected_total=int(fields.get("rejected_total") or 0),
        window_seconds=_window_minutes() * BUCKET_SECONDS,
    )


def breaker_reset(name: str) -> None:
    """Close the breaker of ``name`` and forget its failures (an operator's override; tests)."""
    connection = _redis()
    with connection.pipeline(transaction=True) as pipe:
        pipe.hset(_breaker_key(name), mapping={"state": "closed", "failures": 0})
        pipe.hdel(_breaker_key(name), "opened_at_ms")
        pipe.delete(_trial_key(name))
        pipe.execute()


# --- Probe --------------------------------------------------------------------------------

ProbeOutcome = Literal["ok", "failed", "refused", "unconfigured", "error"]


def _probe_record(name: str, outcome: ProbeOutcome, detail: str = "") -> None:
    _redis().hset(
        _breaker_key(name),
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
    interval_ms = _ms(settings.PROVIDER_PROBE_INTERVAL_SECONDS)
    return bool(connection.set(_probe_key(name), "1", nx=True, px=interval_ms))


def providers_probe_all() -> dict[str, ProbeOutcome]:
    """Probe every enabled provider that needs it; returns the outcome per provider probed.

    A half-open breaker is probed at once (the probe is its trial); a closed one once per
    ``PROVIDER_PROBE_INTERVAL_SECONDS`` across all processes; an open one is left alone
    until its open period is over. Providers are probed one after another, so a slow one
    delays the rest by at most its adapter's timeouts.
    """
    connection = _redis()
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
