"""Dynamic's admin REST API (https://www.dynamic.xyz/docs/api-reference): the only module that
talks to Dynamic.

Requests carry the environment-scoped API token as ``Authorization: Bearer dyn_...``.
Answers are returned as Dynamic sent them (decoded JSON); the adapter maps them to our types.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from providers.http import ProviderHttpClient

PROVIDER = "dynamic"
DEFAULT_BASE_URL = "https://app.dynamicauth.com/api/v0"


class DynamicClient:
    def __init__(
        self,
        *,
        environment_id: str,
        api_token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self._environment = quote(environment_id, safe="")
        self._http = ProviderHttpClient(
            PROVIDER,
            base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_token}"},
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
        )

    def create_embedded_wallet(self, *, email: str) -> dict[str, Any]:
        """POST /environments/{environmentId}/embeddedWallets for ``email``; answers ``{"user": {...}}``.

        Dynamic creates the user if the email is unknown and answers 200 with the existing
        user when it already has an embedded wallet (201 when it made one), so a repeated call
        returns the first wallet: that is what makes retrying this POST safe.
        """
        answer: dict[str, Any] = self._http.request(
            "POST",
            f"/environments/{self._environment}/embeddedWallets",
            json={"identifier": email, "type": "email", "chains": ["EVM"], "chain": "EVM"},
            idempotent=True,
        )
        return answer

    def get_user(self, user_id: str) -> dict[str, Any]:
        """GET /environments/{environmentId}/users/{userId}; answers ``{"user": {...}}``.

        A ProviderError with status 404 when the environment has no such user.
        """
        answer: dict[str, Any] = self._http.request(
            "GET", f"/environments/{self._environment}/users/{quote(user_id, safe='')}"
        )
        return answer

    def list_users(self, *, limit: int, retry: bool = True) -> dict[str, Any]:
        """GET /environments/{environmentId}/users?limit=...; answers ``{"count": ..., "users": [...]}``."""
        answer: dict[str, Any] = self._http.request(
            "GET", f"/environments/{self._environment}/users", params={"limit": limit}, idempotent=retry
        )
        return answer

    def close(self) -> None:
        self._http.close()
