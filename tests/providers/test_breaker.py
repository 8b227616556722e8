"""The circuit breaker (``providers.breaker``) and the statistics health reads from it, on real Redis."""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django_redis import get_redis_connection

from providers.breaker import KEY_PREFIX, breaker_state, call_provider
from providers.errors import ProviderError, ProviderUnavailable
from providers.health import provider_stats

OPEN_SECONDS = 0.3


@pytest.fixture(autouse=True)
def _breaker_settings(settings: Any) -> None:
    settings.PROVIDER_BREAKER_FAILURE_THRESHOLD = 3
    settings.PROVIDER_BREAKER_OPEN_SECONDS = OPEN_SECONDS
    settings.PROVIDER_BREAKER_TRIAL_SECONDS = 5.0


@pytest.fixture
def name() -> Iterator[str]:
    """A provider name of its own per test, so no breaker state leaks between tests."""
    provider = f"acme-{uuid.uuid4().hex[:8]}"
    yield provider
    connection = get_redis_connection("default")
    keys = list(connection.scan_iter(f"{KEY_PREFIX}{provider}*"))
    if keys:
        connection.delete(*keys)


class FakeCall:
    """A provider call that counts how often it ran and fails while ``error`` is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def __call__(self, value: str = "ok") -> str:
        with self._lock:
            self.calls += 1
        if self.error is not None:
            raise self.error
        return value


def server_error() -> ProviderError:
    return ProviderError("acme", "GET /things answered HTTP 503", status_code=503, retryable=True)


def fail(name: str, fn: Callable[[], Any], times: int) -> None:
    for _ in range(times):
        with pytest.raises(ProviderError):
            call_provider(name, fn)


def open_breaker(name: str) -> None:
    failing = FakeCall()
    failing.error = server_error()
    fail(name, failing, 3)
    assert breaker_state(name) == "open"


def test_an_unknown_provider_starts_closed(name: str) -> None:
    assert breaker_state(name) == "closed"
    assert provider_stats(name)["calls"] == 0


def test_calls_pass_through_and_return_the_result(name: str) -> None:
    fn = FakeCall()
    assert call_provider(name, fn, "answer") == "answer"
    assert fn.calls == 1


def test_consecutive_failures_open_the_breaker_at_the_threshold(name: str) -> None:
    fn = FakeCall()
    fn.error = server_error()

    fail(name, fn, 2)
    assert breaker_state(name) == "closed"
    with pytest.raises(ProviderError) as raised:
        call_provider(name, fn)

    assert raised.value is fn.error  # the caller sees the provider's own error
    assert breaker_state(name) == "open"
    assert provider_stats(name)["opened_at"] is not None


def test_a_success_resets_the_consecutive_failure_count(name: str) -> None:
    fn = FakeCall()
    fn.error = server_error()
    fail(name, fn, 2)
    fn.error = None
    call_provider(name, fn)
    fn.error = server_error()
    fail(name, fn, 2)

    assert breaker_state(name) == "closed"
    assert provider_stats(name)["consecutive_failures"] == 2


def test_timeouts_count_as_failures(name: str) -> None:
    fn = FakeCall()
    fn.error = TimeoutError("read timed out")
    for _ in range(3):
        with pytest.raises(TimeoutError):
            call_provider(name, fn)
    assert breaker_state(name) == "open"


@pytest.mark.parametrize(
    "error",
    [
        ProviderError("acme", "wallet not found", status_code=404),
        ProviderError("acme", "chain type 'solana' is not supported", status_code=400),
        ValueError("a bug of ours, not the provider's"),
    ],
)
def test_errors_that_are_not_the_providers_fault_never_open_the_breaker(name: str, error: Exception) -> None:
    fn = FakeCall()
    fn.error = error
    for _ in range(10):
        with pytest.raises(type(error)):
            call_provider(name, fn)

    assert breaker_state(name) == "closed"
    stats = provider_stats(name)
    assert (stats["calls"], stats["failures"], stats["error_rate"]) == (10, 0, 0.0)
    assert stats["last_error"] is None


def test_an_open_breaker_refuses_calls_without_making_them(name: str) -> None:
    open_breaker(name)
    fn = FakeCall()

    for _ in range(5):
        with pytest.raises(ProviderUnavailable) as raised:
            call_provider(name, fn)

    assert fn.calls == 0
    refusal = raised.value
    assert isinstance(refusal, ProviderError)
    assert refusal.retryable is True
    assert refusal.message == "circuit open"
    assert 0 < refusal.retry_after <= OPEN_SECONDS
    assert provider_stats(name)["rejected"] == 5


def test_the_breaker_is_half_open_once_the_open_period_is_over(name: str) -> None:
    open_breaker(name)
    time.sleep(OPEN_SECONDS + 0.05)
    assert breaker_state(name) == "half_open"


def test_half_open_lets_exactly_one_trial_through_at_a_time(name: str) -> None:
    open_breaker(name)
    time.sleep(OPEN_SECONDS + 0.05)
    release = threading.Event()
    entered = FakeCall()

    def slow_trial() -> str:
        entered()
        release.wait(timeout=5)
        return "ok"

    threads = 10
    start = threading.Barrier(threads)

    def attempt() -> str:
        start.wait()
        try:
            return call_provider(name, slow_trial)
        except ProviderUnavailable:
            return "refused"

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(attempt) for _ in range(threads)]
        deadline = time.monotonic() + 5
        while sum(f.done() for f in futures) < threads - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert breaker_state(name) == "half_open"  # the trial is still running
        release.set()
        results = [f.result() for f in futures]

    assert entered.calls == 1
    assert sorted(results) == ["ok"] + ["refused"] * (threads - 1)
    assert breaker_state(name) == "closed"


def test_a_successful_trial_closes_the_breaker(name: str) -> None:
    open_breaker(name)
    time.sleep(OPEN_SECONDS + 0.05)
    fn = FakeCall()

    assert call_provider(name, fn) == "ok"

    assert breaker_state(name) == "closed"
    assert provider_stats(name)["consecutive_failures"] == 0
    call_provider(name, fn)
    assert fn.calls == 2


def test_a_failed_trial_opens_the_breaker_for_another_period(name: str) -> None:
    open_breaker(name)
    first_opened_at = provider_stats(name)["opened_at"]
    time.sleep(OPEN_SECONDS + 0.05)
    fn = FakeCall()
    fn.error = server_error()

    with pytest.raises(ProviderError):
        call_provider(name, fn)

    assert breaker_state(name) == "open"
    reopened_at = provider_stats(name)["opened_at"]
    assert first_opened_at is not None and reopened_at is not None and reopened_at > first_opened_at
    with pytest.raises(ProviderUnavailable):
        call_provider(name, fn)
    assert fn.calls == 1


def test_a_trial_ending_in_a_non_provider_error_frees_the_trial_slot(name: str) -> None:
    open_breaker(name)
    time.sleep(OPEN_SECONDS + 0.05)
    fn = FakeCall()
    fn.error = ProviderError("acme", "wallet not found", status_code=404)

    with pytest.raises(ProviderError):
        call_provider(name, fn)

    assert breaker_state(name) == "half_open"  # a 404 proves nothing either way
    fn.error = None
    call_provider(name, fn)
    assert breaker_state(name) == "closed"


def test_a_trial_that_never_reports_back_frees_its_slot_after_the_trial_time(
    name: str, settings: Any
) -> None:
    """A process that dies during its trial must not keep the breaker half-open for good;
    when its late answer finally arrives, it no longer decides anything."""
    settings.PROVIDER_BREAKER_TRIAL_SECONDS = 0.2
    open_breaker(name)
    time.sleep(OPEN_SECONDS + 0.05)
    release = threading.Event()

    def stuck() -> str:
        release.wait(timeout=5)
        raise server_error()

    with ThreadPoolExecutor(max_workers=1) as pool:
        late = pool.submit(call_provider, name, stuck)
        time.sleep(0.05)
        with pytest.raises(ProviderUnavailable):
            call_provider(name, FakeCall())
        time.sleep(0.2)
        assert call_provider(name, FakeCall()) == "ok"  # the new trial
        release.set()
        with pytest.raises(ProviderError):
            late.result()

    assert breaker_state(name) == "closed"


def test_stats_report_error_rate_and_latency(name: str) -> None:
    def slow(seconds: float, error: ProviderError | None = None) -> None:
        time.sleep(seconds)
        if error is not None:
            raise error

    for _ in range(3):
        call_provider(name, slow, 0.02)
    with pytest.raises(ProviderError):
        call_provider(name, slow, 0.1, server_error())

    stats = provider_stats(name)
    assert (stats["calls"], stats["failures"]) == (4, 1)
    assert stats["error_rate"] == 0.25
    assert stats["latency_ms_avg"] is not None and 35 <= stats["latency_ms_avg"] < 200
    assert stats["latency_ms_p50"] is not None and 20 <= stats["latency_ms_p50"] <= 50
    assert stats["latency_ms_p95"] is not None and 100 <= stats["latency_ms_p95"] < 250
    assert stats["last_error"] == "acme: GET /things answered HTTP 503"
    assert stats["last_error_at"] is not None
    assert (stats["calls_total"], stats["failures_total"]) == (4, 1)
    assert stats["state"] == stats["breaker"] == "closed"
    assert stats["window_seconds"] == django_settings.PROVIDER_STATS_WINDOW_SECONDS


def test_failures_recorded_by_20_threads_at_once_are_all_counted(name: str, settings: Any) -> None:
    settings.PROVIDER_BREAKER_FAILURE_THRESHOLD = 10_000
    fn = FakeCall()
    fn.error = server_error()
    threads, each = 20, 10
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait()
        fail(name, fn, each)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(hammer) for _ in range(threads)]:
            future.result()

    stats = provider_stats(name)
    assert fn.calls == threads * each
    assert stats["calls"] == stats["failures"] == stats["calls_total"] == threads * each
    assert stats["consecutive_failures"] == threads * each
    assert stats["error_rate"] == 1.0


def test_concurrent_failures_open_the_breaker_exactly_once(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    fn = FakeCall()
    fn.error = server_error()
    threads = 20
    start = threading.Barrier(threads)

    def one() -> None:
        start.wait()
        with pytest.raises(ProviderError):
            call_provider(name, fn)

    with caplog.at_level(logging.WARNING, logger="providers.breaker"), ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(one) for _ in range(threads)]:
            future.result()

    assert breaker_state(name) == "open"
    opened = [r for r in caplog.records if "circuit opened" in r.getMessage()]
    assert len(opened) == 1
    # Calls already under way when it opened finish and are counted, later ones are refused.
    stats = provider_stats(name)
    assert stats["calls"] + stats["rejected"] == threads
    assert stats["calls"] >= 3


def test_without_redis_calls_go_through_unrecorded(name: str) -> None:
    caches = copy.deepcopy(django_settings.CACHES)
    caches["default"]["LOCATION"] = "redis://127.0.0.1:1/0"
    fn = FakeCall()
    with override_settings(CACHES=caches):
        assert call_provider(name, fn) == "ok"
        assert breaker_state(name) == "closed"
    assert fn.calls == 1
