"""The one HTTP layer every provider client goes through.

Explicit timeouts, a ``MarqetFi/<version>`` User-Agent, retries with exponential backoff and
full jitter for idempotent calls only, and one failure type: whatever goes wrong (timeout,
refused connection, vendor error status, a success body that is not JSON) ends as a
``ProviderError`` carrying the provider, the status and the vendor's answer.

Request headers and bodies carry credentials, so they are never logged; a log line holds the
provider, method, host and path (no query string), status, attempt and duration. Values of
credential headers and of the Basic auth password are also masked in any vendor answer
copied into a ``ProviderError``, in case a vendor echoes them back.
"""

from __future__ import annotations

import base64
import logging
import time
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from marqetfi.core.logging import is_sensitive_key
from providers.errors import ProviderError

logger = logging.getLogger("providers.http")

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RESPONSE_LIMIT: Final = 2048
_DETAIL_LIMIT: Final = 300
_MASK: Final = "***"
_MIN_SECRET_LENGTH: Final = 6


@cache
def user_agent() -> str:
    """``MarqetFi/<version>``: the installed distribution's version, else pyproject's, else "dev"."""
    try:
        version = metadata.version("marqetfi")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            version = str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            version = "dev"
    return f"MarqetFi/{version}"


class _AttemptFailed(Exception):
    """One attempt failed: ``error`` is what the caller gets if no further attempt follows."""

    def __init__(self, error: ProviderError, *, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class ProviderHttpClient:
    """A JSON-over-HTTP session to one provider.

    ``timeout`` bounds each attempt (connect at most 5 s of it), so a call that is retried
    can take up to ``max_attempts`` times as long plus the waits in between. Waits grow
    exponentially from ``backoff_seconds`` (randomised between zero and the current bound,
    capped at ``max_backoff_seconds``). A ``Retry-After`` on a 429 or 5xx answer (on a 429
    without one, ``RateLimit-Reset``) of at most ``max_retry_after`` seconds replaces the
    computed wait; a longer one ends the call at once with a retryable error so that the
    caller (typically a Celery task) can come back later. The error of a 429 or 5xx carries
    that wait as ``retry_after``.

    Thread-safe: one instance may be shared; it pools connections until ``close()``.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 5.0,
        max_retry_after: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.provider = provider
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self._backoff = wait_random_exponential(multiplier=backoff_seconds, max=max_backoff_seconds)
        self._secrets = _secret_values(headers or {}, auth)
        self._client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": user_agent(), "Accept": "application/json", **(headers or {})},
            auth=auth,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send ``method path`` (relative to the base URL) and return the decoded JSON body.

        Returns None for an empty body (e.g. 204). Retries timeouts, connection errors, 429
        and 5xx, but only when the call is idempotent: GET, HEAD, OPTIONS, PUT and DELETE are
        by default; pass ``idempotent=True`` for a POST the vendor deduplicates (an
        idempotency key header, a natural key), ``idempotent=False`` to never retry.

        Raises ProviderError on any failure; its ``retryable`` says whether the same call may
        succeed later, ``response`` holds the vendor's decoded answer (or its text), at most
        about 2 KB.
        """
        method = method.upper()
        may_retry = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        secrets = self._secrets + _secret_values(headers or {}, None)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts if may_retry else 1),
            wait=self._wait,
            retry=retry_if_exception(self._should_retry),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(
                        method,
                        path,
                        json=json,
                        params=params,
                        headers=headers,
                        attempt_number=attempt.retry_state.attempt_number,
                        secrets=secrets,
                    )
        except _AttemptFailed as failure:
            raise failure.error from failure.__cause__
        raise AssertionError("unreachable: tenacity either returns or reraises")  # pragma: no cover

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ProviderHttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _attempt(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        attempt_number: int,
        secrets: tuple[str, ...],
    ) -> Any:
        target = f"{method} {path}"
        started = time.monotonic()
        try:
            response = self._client.request(method, path, json=json, params=params, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
            self._log_attempt(
                method=method, path=path, outcome=failure, attempt=attempt_number, started=started
            )
            raise _AttemptFailed(self._transport_error(target, exc)) from exc
        self._log_attempt(method=method, path=path, outcome=response, attempt=attempt_number, started=started)

        status = response.status_code
        if not response.is_success:
            payload = _scrub(_payload(response), secrets)
            detail = _error_detail(payload)
            retryable = status == 429 or status >= 500
            retry_after = _retry_after(response) if retryable else None
            message = f"{target} answered HTTP {status}" + (f": {detail}" if detail else "")
            if retry_after is not None and retry_after > self.max_retry_after:
                message += f" (retry after {retry_after:.0f} s)"
            error = ProviderError(
                self.provider,
                message,
                status_code=status,
                response=payload,
                retryable=retryable,
                retry_after=retry_after,
            )
            raise _AttemptFailed(error, retry_after=retry_after)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            error = ProviderError(
                self.provider,
                f"{target} answered HTTP {status} with a body that is not JSON",
                status_code=status,
                response=_scrub(_truncate(response.text), secrets),
            )
            raise _AttemptFailed(error) from exc

    def _transport_error(self, target: str, exc: Exception) -> ProviderError:
        """No HTTP answer: timeouts and network failures may pass; a request that cannot be
        built or sent (bad URL, unsupported scheme) will not."""
        if isinstance(exc, httpx.TimeoutException):
            return ProviderError(
                self.provider, f"{target} timed out after {self.timeout:g} s", retryable=True
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.InvalidURL):
            return ProviderError(self.provider, f"{target} could not be sent: {exc}")
        retryable = isinstance(exc, httpx.TransportError)
        return ProviderError(
            self.provider, f"{target} failed: {type(exc).__name__}: {exc}", retryable=retryable
        )

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, _AttemptFailed) or not exc.error.retryable:
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_retry_after

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _AttemptFailed) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def _log_retry(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info(
            "%s: retrying in %.2f s after attempt %d/%d",
            self.provider,
            wait,
            state.attempt_number,
            self.max_attempts,
            extra={"provider": self.provider, "attempt": state.attempt_number, "wait_seconds": wait},
        )

    def _log_attempt(
        self, *, method: str, path: str, outcome: httpx.Response | str, attempt: int, started: float
    ) -> None:
        """One line per attempt; ``outcome`` is the response or, without one, the failure's name."""
        duration_ms = round((time.monotonic() - started) * 1000)
        if isinstance(outcome, httpx.Response):
            url, status, ok = outcome.request.url, outcome.status_code, outcome.is_success
        else:
            url, status, ok = self._client.base_url.join(path.lstrip("/")), None, False
        where = f"{url.host}{url.path}"
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "%s %s %s -> %s (attempt %d, %d ms)",
            self.provider,
            method,
            where,
            status if status is not None else outcome,
            attempt,
            duration_ms,
            extra={
                "provider": self.provider,
                "http_method": method,
                "http_url": where,
                "http_status": status,
                "attempt": attempt,
                "duration_ms": duration_ms,
            },
        )


def _secret_values(headers: Mapping[str, str], auth: httpx.Auth | tuple[str, str] | None) -> tuple[str, ...]:
    """The credential strings to mask: credential header values (and their token part) and
    the Basic auth password with its encoded header form. Longest first, so that a value
    containing another is masked whole."""
    found: set[str] = set()
    for name, value in headers.items():
        if is_sensitive_key(name):
            found.add(value)
            found.update(value.split()[1:])
    if isinstance(auth, tuple):
        username, password = auth
        found.add(password)
        found.add(base64.b64encode(f"{username}:{password}".encode()).decode())
    return tuple(sorted((s for s in found if len(s) >= _MIN_SECRET_LENGTH), key=len, reverse=True))


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, _MASK)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


def _truncate(text: str, limit: int = RESPONSE_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "...[truncated]"


def _payload(response: httpx.Response) -> Any:
    """The vendor's answer for a ProviderError: decoded JSON when small enough, else text."""
    text = response.text
    if not text:
        return None
    if len(text) > RESPONSE_LIMIT:
        return _truncate(text)
    try:
        return response.json()
    except ValueError:
        return text


def _error_detail(payload: Any) -> str | None:
    """The vendor's own words from the common shapes ``{"error": "..."}``,
    ``{"error": {"message": "..."}}``, ``{"message": "..."}`` and ``{"detail": "..."}``."""
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return _truncate(value, _DETAIL_LIMIT)
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the vendor asks us to wait: ``Retry-After``, else on a 429 the reset of its
    rate-limit window (``RateLimit-Reset``, delta-seconds, as LI-FI sends it); None if neither."""
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    if retry_after is None and response.status_code == 429:
        reset = response.headers.get("RateLimit-Reset")
        retry_after = _retry_after_seconds(reset) if reset and reset.strip().isdigit() else None
    return retry_after


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
