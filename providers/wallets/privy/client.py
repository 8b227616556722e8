"""Privy's REST API (https://docs.privy.io/api-reference): the only module that talks to Privy.

Every request carries Basic auth ``app_id:app_secret`` and the ``privy-app-id`` header.
Answers are returned as Privy sent them (decoded JSON); the adapter maps them to our types.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from providers.http import ProviderHttpClient

PROVIDER = "privy"
DEFAULT_BASE_URL = "https://api.privy.io"


class PrivyClient:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self._http = ProviderHttpClient(
            PROVIDER,
            base_url,
            timeout=timeout,
            headers={"privy-app-id": app_id},
            auth=(app_id, app_secret),
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
        )

    def create_wallet(
        self, *, chain_type: str, idempotency_key: str, owner_user_id: str | None = None
    ) -> dict[str, Any]:
        """POST /v1/wallets: a new wallet, or the one made by an earlier call with the same key.

        Privy replays the stored answer for a repeated ``privy-idempotency-key`` (same body)
        for 24 hours, which is what makes the retries of this POST safe. ``owner_user_id`` is
        a Privy user id (``did:privy:...``); without it the wallet belongs to the app.
        """
        body: dict[str, Any] = {"chain_type": chain_type}
        if owner_user_id is not None:
            body["owner"] = {"user_id": owner_user_id}
        answer: dict[str, Any] = self._http.request(
            "POST",
            "/v1/wallets",
            json=body,
            headers={"privy-idempotency-key": idempotency_key},
            idempotent=True,
        )
        return answer

    def get_wallet(self, wallet_id: str) -> dict[str, Any]:
        """GET /v1/wallets/{wallet_id}; a ProviderError with status 404 when Privy has no such wallet."""
        answer: dict[str, Any] = self._http.request("GET", f"/v1/wallets/{quote(wallet_id, safe='')}")
        return answer

    def list_wallets(self, *, limit: int, retry: bool = True) -> dict[str, Any]:
        """GET /v1/wallets?limit=...: a page of the app's wallets, ``{"data": [...], "next_cursor": ...}``."""
        answer: dict[str, Any] = self._http.request(
            "GET", "/v1/wallets", params={"limit": limit}, idempotent=retry
        )
        return answer

    def rpc(
        self,
        wallet_id: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        retry: bool = False,
    ) -> dict[str, Any]:
        """POST /v1/wallets/{wallet_id}/rpc: one signing (or signing and sending) request.

        Retried only when ``retry`` says the request is safe to repeat: a pure signature, or a
        send carrying an ``idempotency_key`` that Privy deduplicates for 24 hours.
        """
        headers = {"privy-idempotency-key": idempotency_key} if idempotency_key else None
        answer: dict[str, Any] = self._http.request(
            "POST",
            f"/v1/wallets/{quote(wallet_id, safe='')}/rpc",
            json=body,
            headers=headers,
            idempotent=retry,
        )
        return answer

    def close(self) -> None:
        self._http.close()
