"""LI-FI's REST API (https://docs.li.fi/api-reference): the only module that talks to LI-FI.

Every request carries ``x-lifi-integrator`` and, when we have one, ``x-lifi-api-key`` (as the
official SDK does). Answers are returned as LI-FI sent them (decoded JSON); the adapter maps
them to our types. A LI-FI error answer ``{"message": ..., "code": 1002}`` becomes a
ProviderError with that ``code``; 429 and 5xx are retryable, with ``retry_after`` from
``Retry-After`` or ``ratelimit-reset``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.errors import ProviderError
from providers.http import ProviderHttpClient

PROVIDER = "lifi"
DEFAULT_BASE_URL = "https://li.quest/v1"


class LifiClient:
    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = "",
        integrator: str = "marqetfi",
        timeout: float = 10.0,
        max_attempts: int = 2,
        backoff_seconds: float = 0.5,
        max_retry_after: float = 2.0,
    ) -> None:
        """``max_attempts`` 2: one more try after a timeout, a dropped connection or a 5xx
        (the SDK also retries a 500 once). A 429 or 5xx asking to wait longer than
        ``max_retry_after`` seconds ends the call at once: LI-FI's rate-limit windows last up
        to two hours, so the caller (a task) comes back later instead of sleeping."""
        headers = {"x-lifi-integrator": integrator}
        if api_key:
            headers["x-lifi-api-key"] = api_key
        self.has_api_key = bool(api_key)
        self._http = ProviderHttpClient(
            PROVIDER,
            base_url,
            timeout=timeout,
            headers=headers,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
            max_retry_after=max_retry_after,
        )

    def quote(self, params: Mapping[str, str]) -> Any:
        """GET /quote: the best single-step route with its ``transactionRequest``.

        A read (LI-FI stores nothing we depend on), so retrying it is harmless.
        """
        return self._get("/quote", params)

    def status(self, params: Mapping[str, str]) -> Any:
        """GET /status: where the transfer started by ``txHash`` stands."""
        return self._get("/status", params)

    def chains(self, *, chain_types: str = "EVM", retry: bool = True) -> Any:
        """GET /chains?chainTypes=...: the chains LI-FI supports."""
        return self._get("/chains", {"chainTypes": chain_types}, retry=retry)

    def keys_test(self, *, retry: bool = True) -> Any:
        """GET /keys/test: answers 2xx only for a valid ``x-lifi-api-key``."""
        return self._get("/keys/test", None, retry=retry)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: Mapping[str, str] | None, *, retry: bool = True) -> Any:
        try:
            return self._http.request("GET", path, params=params, idempotent=retry)
        except ProviderError as exc:
            code = _lifi_code(exc.response)
            if code is None:
                raise
            raise ProviderError(
                exc.provider,
                exc.message + f" (LI-FI code {code})",
                status_code=exc.status_code,
                response=exc.response,
                retryable=exc.retryable,
                retry_after=exc.retry_after,
                code=code,
            ) from exc


def _lifi_code(body: Any) -> int | str | None:
    """The ``code`` of a LI-FI error body (numeric, e.g. 1002 for "no quote"), else None."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, bool) or not isinstance(code, int | str) or code == "":
        return None
    return code
