"""Dynamic's admin REST API (https://www.dynamic.xyz/docs/api-reference): the only module that
talks to Dynamic.

Requests carry the environment-scoped API token as ``Authorization: Bearer dyn_...``.
Answers are returned as Dynamic sent them (decoded JSON); the adapter maps them to our types.

Wallet creation, as read in Dynamic's OpenAPI ("Dashboard API", servers
``https://app.dynamicauth.com/api/v0`` and ``https://app.dynamic.xyz/api/v0``; the docs page
api-reference/wallets/create-waas-wallet, whose ``waas`` section is also kept in the public
mirror api-evangelist/dynamic-labs, openapi/_original/dynamic-xyz-waas-api-openapi.yml):

- Current: ``POST /environments/{environmentId}/waas/create`` (operation ``createWaasWallet``),
  bearer auth. Body ``CreateUserWaasWalletsRequest``: ``identifier`` (required; email, phone
  number, user id, external user id or social username), ``type`` (required; ``email`` |
  ``id`` | ``externalUserId`` | ``phoneNumber`` | ``socialUsername`` | ``socialAccountId``),
  ``chains`` (required; ``WaasChainEnum`` values such as ``EVM``), optional
  ``smsCountryCode`` and ``socialProvider``. Creates the user when the email is unknown.
  Answers ``UserResponse`` (``{"user": User}``, the user's ``verifiedCredentials`` included):
  **201** "Successfully created new wallet for the user", **200** "Wallet already exists for
  the user". Errors: 400 ``{"error"}``, 401, 403 ``{"error": "Access Forbidden"}``, 422
  ``{"error", "code", "payload"?}`` (``code`` from ``UnprocessableEntityErrorCode``), 500.
- Legacy: ``POST /environments/{environmentId}/embeddedWallets`` with
  ``{"identifier", "type": "email", "chain"}`` (docs page wallets/createEmbeddedWallet),
  answering ``{"user": User}`` the same way.

Neither endpoint documents an idempotency key; both are keyed by the identifier (200 with the
existing wallet on a repeat), which is what makes retrying their POST safe.
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

    def create_waas_wallet(self, *, email: str) -> dict[str, Any]:
        """POST /environments/{environmentId}/waas/create for ``email``; answers ``{"user": {...}}``.

        The current creation endpoint. Dynamic answers 201 when it made the wallet and 200 with
        the same user when the user already has one, so retrying after a timeout returns the
        wallet the first attempt made.
        """
        answer: dict[str, Any] = self._http.request(
            "POST",
            f"/environments/{self._environment}/waas/create",
            json={"identifier": email, "type": "email", "chains": ["EVM"]},
            idempotent=True,
        )
        return answer

    def create_embedded_wallet(self, *, email: str) -> dict[str, Any]:
        """Legacy: POST /environments/{environmentId}/embeddedWallets for ``email``; ``{"user": ...}``.

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
