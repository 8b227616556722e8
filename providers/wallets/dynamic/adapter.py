"""Dynamic embedded wallets behind our ``WalletProvider`` interface.

Dynamic keys embedded wallets by user, and users by email: ``create_wallet`` needs the
user's verified email and returns the user's existing embedded EVM wallet when there is one.

Which endpoint creates the wallet is the ``wallet_api`` option (``settings.PROVIDERS["dynamic"]``,
``DYNAMIC_WALLET_API``): ``"waas"`` (the default) calls the current
``POST /environments/{environmentId}/waas/create``; ``"legacy"`` calls
``POST /environments/{environmentId}/embeddedWallets``, for environments that still need it
(both are described in ``client.py``, with the sources read).

Automatic fallback, and only this one: under ``"waas"``, a 422 whose ``code`` says the
environment has no WaaS (``WAAS_NOT_ENABLED_CODES``) is answered by one call to the legacy
endpoint, logged as a warning so that an operator can set ``"legacy"``. Both codes are
members of Dynamic's documented ``UnprocessableEntityErrorCode`` enum, but the OpenAPI gives
them no description and does not say which one ``waas/create`` sends for an environment
without WaaS: that these two mean it is our reading of their names, UNCONFIRMED against a
live environment. Every other error (400, 401, 403, other 422 codes, 429, 5xx, timeouts)
is raised as it is, never turned into a fallback.

``provider_wallet_id`` is ``"<userId>:<credentialId>"``: the Dynamic user id and the id of
the wallet's verified credential. Dynamic's current admin API reads a user's credentials
through the user (``GET /environments/{environmentId}/users/{userId}``); there is no
documented lookup from a credential id alone, and keeping the credential id (not just the
address) pins the one wallet even if the user later holds several.

The embedded wallets this adapter creates sign on the user's device: the key shares live
with the user's authenticator, and the admin REST API has no call that signs for them.
``sign_message`` and ``sign_and_send_transaction`` therefore refuse with a non-retryable 501,
so that nothing waits on or retries a signature the server can never make. (Dynamic's
"server wallets" sign server-side, but they are a different product: wallets made by its
Node/Python MPC SDK, where the backend holds a key share; they would be another adapter.)
"""

from __future__ import annotations

import logging
from typing import Any

from eth_utils import to_checksum_address

from providers.base import EvmTransaction, SentTransaction, WalletInfo, WalletProvider
from providers.errors import InvalidProviderConfig, ProviderError
from providers.wallets.dynamic.client import DEFAULT_BASE_URL, DynamicClient

logger = logging.getLogger(__name__)

SUPPORTED_CHAIN_TYPES = frozenset({"ethereum"})
WALLET_APIS = ("waas", "legacy")
# Dynamic 422 codes read as "this environment has no WaaS" (see the module docstring).
WAAS_NOT_ENABLED_CODES = frozenset({"invalid_mpc_environment", "no_compatible_wallet_service_enabled"})
_ID_SEPARATOR = ":"
DEVICE_SIGNING_ONLY = (
    "Dynamic embedded wallets sign on the user's device; the server API cannot sign for them"
)


class DynamicWalletProvider(WalletProvider):
    name = "dynamic"

    def __init__(
        self,
        *,
        environment_id: str,
        api_token: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
        wallet_api: str = "waas",
    ) -> None:
        """``timeout`` bounds each HTTP attempt; retryable failures are tried ``max_attempts`` times.

        ``wallet_api`` is ``"waas"`` or ``"legacy"``: the endpoint ``create_wallet`` calls.
        """
        self._wallet_api = wallet_api_parse(wallet_api)
        self._client = DynamicClient(
            environment_id=environment_id,
            api_token=api_token,
            base_url=base_url,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
        )

    def create_wallet(
        self, *, owner_ref: str, chain_type: str, idempotency_key: str, email: str | None = None
    ) -> WalletInfo:
        """Create (or return the existing) embedded EVM wallet of the Dynamic user with ``email``.

        Idempotent through the email, not ``idempotency_key`` (Dynamic takes none): a repeated
        call, or the client's own retry after a timeout, is answered 200 with the wallet the
        first one made. Without an email this raises a non-retryable ProviderError.
        """
        if chain_type not in SUPPORTED_CHAIN_TYPES:
            raise ProviderError(self.name, f"chain type {chain_type!r} is not supported", status_code=400)
        if not email:
            raise ProviderError(
                self.name, "an email is required to create a Dynamic embedded wallet", retryable=False
            )
        waas = self._wallet_api == "waas"
        if waas:
            try:
                answer = self._client.create_waas_wallet(email=email)
            except ProviderError as exc:
                code = _error_code(exc)
                if exc.status_code != 422 or code not in WAAS_NOT_ENABLED_CODES:
                    raise
                logger.warning(
                    "dynamic: waas/create answered 422 %s; creating the wallet through the legacy "
                    'embeddedWallets endpoint (set the provider option wallet_api to "legacy" '
                    "for this environment)",
                    code,
                )
                waas = False
                answer = self._client.create_embedded_wallet(email=email)
        else:
            answer = self._client.create_embedded_wallet(email=email)
        user = self._user(answer)
        credential = _created_credential(self._credentials(user), prefer_waas=waas)
        if credential is None:
            raise ProviderError(self.name, "the answer holds no embedded EVM wallet", response=answer)
        return self._wallet_info(user, credential, answer)

    def get_wallet(self, *, provider_wallet_id: str) -> WalletInfo:
        """``provider_wallet_id`` is ``"<userId>:<credentialId>"`` as ``create_wallet`` returned it."""
        user_id, separator, credential_id = provider_wallet_id.partition(_ID_SEPARATOR)
        if not (user_id and separator and credential_id):
            raise ProviderError(self.name, "no such wallet (malformed wallet id)", status_code=404)
        answer = self._client.get_user(user_id)
        user = self._user(answer)
        credential = next((c for c in self._credentials(user) if c.get("id") == credential_id), None)
        if credential is None or not _is_embedded_evm(credential):
            raise ProviderError(self.name, "no such wallet", status_code=404)
        return self._wallet_info(user, credential, answer)

    def health_check(self) -> None:
        """``GET /environments/{environmentId}/users?limit=1``: authenticated, read-only, small.

        One attempt, no retries: the caller (the circuit breaker's probe) decides what a
        failure means. A 401/403 here means the API token is wrong or lacks the users scope.
        """
        answer = self._client.list_users(limit=1, retry=False)
        if not isinstance(answer, dict):
            raise ProviderError(self.name, "the user list answer is not a JSON object", response=answer)

    def sign_message(self, *, provider_wallet_id: str, message: str) -> str:
        """Always a 501: the user signs on their device (see the module docstring)."""
        raise ProviderError(self.name, DEVICE_SIGNING_ONLY, status_code=501, retryable=False)

    def sign_and_send_transaction(
        self, *, provider_wallet_id: str, transaction: EvmTransaction
    ) -> SentTransaction:
        """Always a 501: the user signs on their device (see the module docstring)."""
        raise ProviderError(self.name, DEVICE_SIGNING_ONLY, status_code=501, retryable=False)

    def close(self) -> None:
        """Release the pooled HTTP connections; the instance is unusable afterwards."""
        self._client.close()

    def _user(self, answer: Any) -> dict[str, Any]:
        user = answer.get("user") if isinstance(answer, dict) else None
        if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
            raise ProviderError(self.name, "the answer holds no user with an id", response=answer)
        return user

    def _credentials(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        credentials = user.get("verifiedCredentials") or []
        return [c for c in credentials if isinstance(c, dict)] if isinstance(credentials, list) else []

    def _wallet_info(self, user: dict[str, Any], credential: dict[str, Any], answer: Any) -> WalletInfo:
        credential_id, address = credential.get("id"), credential.get("address")
        if not isinstance(credential_id, str) or not credential_id:
            raise ProviderError(self.name, "the wallet credential has no id", response=answer)
        if not isinstance(address, str) or not address:
            raise ProviderError(
                self.name, f"wallet credential {credential_id} has no address", response=answer
            )
        try:
            checksummed = to_checksum_address(address)
        except ValueError as exc:
            raise ProviderError(
                self.name, f"wallet credential {credential_id} has an invalid address", response=answer
            ) from exc
        return WalletInfo(
            provider=self.name,
            provider_wallet_id=f"{user['id']}{_ID_SEPARATOR}{credential_id}",
            address=checksummed,
            chain_type="ethereum",
        )


def wallet_api_parse(value: Any) -> str:
    """The ``wallet_api`` option, validated: ``"waas"`` or ``"legacy"``."""
    if value not in WALLET_APIS:
        raise InvalidProviderConfig(details={"wallet_api": [f"One of: {', '.join(WALLET_APIS)}."]})
    return str(value)


def dynamic_options_check(options: dict[str, Any]) -> None:
    """Refuse a configuration version whose ``wallet_api`` the adapter would not take."""
    wallet_api_parse(options.get("wallet_api", "waas"))


def _error_code(error: ProviderError) -> str | None:
    """Dynamic's ``code`` in an error answer (``{"error": ..., "code": ...}``), if any."""
    code = error.response.get("code") if isinstance(error.response, dict) else None
    return code if isinstance(code, str) else None


def _created_credential(credentials: list[dict[str, Any]], *, prefer_waas: bool) -> dict[str, Any] | None:
    """The embedded EVM credential a creation answer is about.

    A WaaS answer may also list an older (pre-WaaS) embedded wallet of the same user; the WaaS
    one is told by its ``wallet_properties`` in the documented ``WaasWalletProperties`` shape
    (``thresholdSignatureScheme``). Otherwise, or if none has it, the first embedded EVM one.
    """
    embedded = [c for c in credentials if _is_embedded_evm(c)]
    if prefer_waas:
        waas = [c for c in embedded if _is_waas(c)]
        if waas:
            return waas[0]
    return embedded[0] if embedded else None


def _is_waas(credential: dict[str, Any]) -> bool:
    properties = credential.get("wallet_properties")
    return isinstance(properties, dict) and "thresholdSignatureScheme" in properties


def _is_embedded_evm(credential: dict[str, Any]) -> bool:
    return (
        credential.get("format") == "blockchain"
        and credential.get("chain") == "eip155"
        and credential.get("wallet_provider") == "embeddedWallet"
    )
