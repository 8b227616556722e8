"""Lighter's REST API (``/api/v1/...``): the only module that talks to Lighter over the network.

Every answer carries its own status: ``{"code": 200, ...}`` is success, any other ``code``
is an error even inside an HTTP 200. Errors come back as HTTP 400 with ``{"code", "message"}``.
Both become a ``ProviderError``; answers are returned as Lighter sent them (decoded JSON) and
the adapter maps them to our types.

Reads go through the shared ``ProviderHttpClient`` (timeouts, retries of idempotent calls,
429 ``Retry-After``). ``sendTx`` takes an ``application/x-www-form-urlencoded`` body, which
that client cannot send (it only sends JSON), so it has one small form POST of its own here,
with the same User-Agent and timeout, never retried, and the same error shape.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import httpx

from providers.errors import ProviderError
from providers.http import ProviderHttpClient, user_agent

logger = logging.getLogger(__name__)

PROVIDER: Final = "lighter"
DEFAULT_BASE_URL: Final = "https://mainnet.zklighter.elliot.ai"
CODE_OK: Final = 200
ORDER_LIST_LIMIT: Final = 100  # Lighter's maximum page size for order lists
_MESSAGE_LIMIT: Final = 300
# Lighter refuses a transaction whose nonce is not the key's next one; a new nonce fixes it.
_INVALID_NONCE: Final = "invalid nonce"


class LighterClient:
    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        api_url = base_url.rstrip("/") + "/api/v1/"
        self._http = ProviderHttpClient(
            PROVIDER,
            api_url,
            timeout=timeout,
            max_attempts=max_attempts,
            backoff_seconds=backoff_seconds,
        )
        self._form = httpx.Client(
            base_url=api_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": user_agent(), "Accept": "application/json"},
        )

    def order_books(self, *, retry: bool = True) -> list[dict[str, Any]]:
        """GET orderBooks: every market with its status, fees, minimums and supported decimals."""
        answer = self._get("orderBooks", idempotent=retry)
        return _list(answer, "order_books")

    def order_book_details(self) -> list[dict[str, Any]]:
        """GET orderBookDetails: the perp markets with decimals, margin fractions and last prices
        (the spot markets, under ``spot_order_book_details``, are left out)."""
        answer = self._get("orderBookDetails")
        return _list(answer, "order_book_details")

    def order_book_orders(self, *, market_id: int, limit: int = 1) -> dict[str, Any]:
        """GET orderBookOrders: the best ``limit`` (1-100) asks and bids of one market."""
        return self._get("orderBookOrders", params={"market_id": market_id, "limit": limit})

    def account(self, *, account_index: int) -> dict[str, Any]:
        """GET account?by=index: the account with its positions (public, no auth)."""
        answer = self._get("account", params={"by": "index", "value": account_index})
        accounts = _list(answer, "accounts")
        if not accounts:
            raise ProviderError(
                PROVIDER, f"account {account_index} not found", status_code=404, response=answer
            )
        return accounts[0]

    def sub_accounts(self, *, l1_address: str) -> list[dict[str, Any]]:
        """GET accountsByL1Address: every account of the L1 address (master and sub-accounts),
        each with its ``index``. An address Lighter does not know is an empty list."""
        try:
            answer = self._get("accountsByL1Address", params={"l1_address": l1_address})
        except ProviderError as exc:
            if exc.status_code == 400 and "not found" in exc.message:
                return []
            raise
        return _list(answer, "sub_accounts")

    def api_keys(self, *, account_index: int, api_key_index: int) -> list[dict[str, Any]]:
        """GET apikeys: the public key registered in an account's key slot (empty if none)."""
        answer = self._get("apikeys", params={"account_index": account_index, "api_key_index": api_key_index})
        return _list(answer, "api_keys")

    def active_orders(self, *, account_index: int, auth: str, market_id: int | None = None) -> list[Any]:
        """GET accountActiveOrders (auth): the account's resting orders, of one market if given."""
        params: dict[str, Any] = {"account_index": account_index}
        if market_id is not None:
            params["market_id"] = market_id
        answer = self._get("accountActiveOrders", params=params, headers={"Authorization": auth})
        return _list(answer, "orders")

    def inactive_orders(self, *, account_index: int, auth: str, limit: int = ORDER_LIST_LIMIT) -> list[Any]:
        """GET accountInactiveOrders (auth): the most recent filled, cancelled or expired orders."""
        params = {"account_index": account_index, "limit": limit}
        answer = self._get("accountInactiveOrders", params=params, headers={"Authorization": auth})
        return _list(answer, "orders")

    def next_nonce(self, *, account_index: int, api_key_index: int) -> int:
        """GET nextNonce: the nonce the key's next transaction must carry."""
        answer = self._get(
            "nextNonce", params={"account_index": account_index, "api_key_index": api_key_index}
        )
        nonce = answer.get("nonce")
        if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
            raise ProviderError(PROVIDER, "the nextNonce answer holds no nonce", response=answer)
        return nonce

    def send_tx(self, *, tx_type: int, tx_info: str) -> dict[str, Any]:
        """POST sendTx (form ``tx_type``, ``tx_info``): hand a signed transaction to the sequencer.

        Sent once. Lighter executes a key's nonce once, so a second send of the same signed
        transaction can never execute twice; but whether a send whose answer was lost (timeout,
        dropped connection, 5xx) was accepted is unknown, so that error is not retryable: the
        caller reconciles (``get_order``) before signing anything new. A 429 or a connection
        that could not be opened means nothing was accepted (retryable), and so does an
        ``invalid nonce`` refusal: the next attempt signs with a fresh nonce.
        """
        target = "POST sendTx"
        started = time.monotonic()
        try:
            response = self._form.post("sendTx", data={"tx_type": str(tx_type), "tx_info": tx_info})
        except httpx.HTTPError as exc:
            self._log(target, type(exc).__name__, started)
            not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            if not_sent:
                raise ProviderError(
                    PROVIDER, f"{target} failed: {type(exc).__name__}: {exc}", retryable=True
                ) from exc
            failure = (
                "timed out" if isinstance(exc, httpx.TimeoutException) else f"failed ({type(exc).__name__})"
            )
            raise ProviderError(
                PROVIDER,
                f"{target} {failure}; the transaction may have been accepted: "
                "reconcile the order before sending again",
            ) from exc
        self._log(target, response.status_code, started)
        payload = _decoded(response)
        status = response.status_code
        if status >= 500:
            raise ProviderError(
                PROVIDER,
                f"{target} answered HTTP {status}; the transaction may have been accepted: "
                "reconcile the order before sending again",
                status_code=status,
                response=payload,
            )
        if not response.is_success:
            message = _message(payload)
            raise ProviderError(
                PROVIDER,
                f"{target} answered HTTP {status}" + (f": {message}" if message else ""),
                status_code=status,
                response=payload,
                retryable=status == 429 or _INVALID_NONCE in message.lower(),
            )
        return _checked(payload, target)

    def close(self) -> None:
        self._http.close()
        self._form.close()

    def _get(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        answer = self._http.request("GET", path, params=params, headers=headers, idempotent=idempotent)
        return _checked(answer, f"GET {path}")

    def _log(self, target: str, outcome: int | str, started: float) -> None:
        duration_ms = round((time.monotonic() - started) * 1000)
        level = logging.INFO if outcome == 200 else logging.WARNING
        logger.log(
            level,
            "%s %s -> %s (%d ms)",
            PROVIDER,
            target,
            outcome,
            duration_ms,
            extra={"provider": PROVIDER, "http_status": outcome, "duration_ms": duration_ms},
        )


def _checked(answer: Any, target: str) -> dict[str, Any]:
    """The answer when it is a JSON object with ``code`` 200; a ``ProviderError`` otherwise."""
    if not isinstance(answer, dict):
        raise ProviderError(
            PROVIDER, f"{target} answered something that is not a JSON object", response=answer
        )
    code = answer.get("code")
    if code != CODE_OK:
        message = _message(answer)
        raise ProviderError(
            PROVIDER,
            f"{target} answered code {code}" + (f": {message}" if message else ""),
            response=answer,
            retryable=code == 429 or _INVALID_NONCE in message.lower(),
        )
    return answer


def _list(answer: dict[str, Any], key: str) -> list[Any]:
    value = answer.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProviderError(PROVIDER, f"the answer's {key!r} is not a list", response=answer)
    return value


def _decoded(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        text = response.text
        return text if len(text) <= 2048 else text[:2048] + "...[truncated]"


def _message(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])[:_MESSAGE_LIMIT]
    return ""
