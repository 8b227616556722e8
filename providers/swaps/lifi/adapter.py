"""LI-FI behind our ``SwapProvider`` interface.

A quote is LI-FI's ``GET /quote`` (one step with its ready transaction); the status is
``GET /status`` by the source transaction hash. Field names, enums and error codes follow
``@lifi/types`` (src/step.ts, src/api.ts) and the official SDK. Anything in an answer that is
not what LI-FI documents (a body that is not an object, a missing amount, a transaction
field that is not hex) is a non-retryable ProviderError, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils import to_checksum_address

from providers.base import EvmTransaction, SwapProvider, SwapQuote, SwapStatus
from providers.errors import ProviderError
from providers.swaps.lifi.client import DEFAULT_BASE_URL, LifiClient

NATIVE_COIN = "0x0000000000000000000000000000000000000000"  # LI-FI's address for a native coin
# LI-FI's StatusResponse.status, to ours; a value added later reads as pending.
STATUSES: Mapping[str, str] = {
    "NOT_FOUND": "not_found",
    "INVALID": "invalid",
    "PENDING": "pending",
    "DONE": "done",
    "FAILED": "failed",
}
_HEX_QUANTITY = re.compile(r"0x[0-9a-fA-F]+")
_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_DECIMAL_INTEGER = re.compile(r"[0-9]+")


class LifiSwapProvider(SwapProvider):
    name = "lifi"

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str = "",
        integrator: str = "marqetfi",
        timeout: float | str = 10.0,
        max_attempts: int | str = 2,
        backoff_seconds: float | str = 0.5,
        max_retry_after: float | str = 2.0,
    ) -> None:
        """Options arrive as strings from the provider configuration. ``api_key`` may be
        empty (LI-FI then limits by IP); ``integrator`` names us to LI-FI on every request.
        ``timeout`` bounds each HTTP attempt; see ``LifiClient`` for the retries."""
        self.integrator = integrator
        self._client = LifiClient(
            base_url=base_url,
            api_key=api_key,
            integrator=integrator,
            timeout=float(timeout),
            max_attempts=int(max_attempts),
            backoff_seconds=float(backoff_seconds),
            max_retry_after=float(max_retry_after),
        )

    def health_check(self) -> None:
        """With an API key, ``GET /keys/test``: small, and the only call that proves LI-FI
        accepts the key (every other endpoint also answers without one, at the per-IP limits,
        so a revoked key would go unnoticed). Without a key, ``GET /chains?chainTypes=EVM``:
        a read that touches no quote or route limit and needs no parameters we would have to
        invent. One attempt, no retries: the breaker's probe decides what a failure means.
        """
        if self._client.has_api_key:
            self._client.keys_test(retry=False)
            return
        answer = self._client.chains(chain_types="EVM", retry=False)
        if not isinstance(answer, dict) or not isinstance(answer.get("chains"), list):
            raise ProviderError(self.name, "the chains answer has no chain list", response=_short(answer))

    def quote(
        self,
        *,
        from_chain_id: int,
        from_token: str,
        from_amount_raw: int,
        from_address: str,
        to_chain_id: int,
        to_token: str,
        to_address: str,
        slippage: Decimal,
    ) -> SwapQuote:
        if from_amount_raw <= 0:
            raise ProviderError(self.name, "from_amount_raw must be positive", status_code=400)
        if not Decimal(0) <= slippage < Decimal(1):
            raise ProviderError(self.name, "slippage must be a fraction in [0, 1)", status_code=400)
        params = {
            "fromChain": str(from_chain_id),
            "toChain": str(to_chain_id),
            "fromToken": from_token,
            "toToken": to_token,
            "fromAddress": from_address,
            "fromAmount": str(from_amount_raw),
            "toAddress": to_address,
            "slippage": format(slippage.normalize(), "f"),
            "integrator": self.integrator,
        }
        answer = self._client.quote(params)
        return _QuoteReader(self.name, answer, requested_to_address=to_address).read()

    def status(self, *, tx_hash: str, from_chain_id: int, to_chain_id: int) -> SwapStatus:
        """``not_found`` whether LI-FI answers 200 ``{"status": "NOT_FOUND"}`` or HTTP 404 with
        its JSON error body (the docs do not say which). A 404 without one (an HTML page, a
        wrong base URL) stays an error: reading it as "not found yet" would hide the mistake
        behind polls that never end."""
        params = {"txHash": tx_hash, "fromChain": str(from_chain_id), "toChain": str(to_chain_id)}
        try:
            answer = self._client.status(params)
        except ProviderError as exc:
            if exc.status_code == 404 and isinstance(exc.response, dict):
                return SwapStatus(
                    status="not_found",
                    substatus=None,
                    substatus_message=_optional_str(exc.response.get("message")),
                    sending_tx_hash=None,
                    receiving_tx_hash=None,
                    received_amount_raw=None,
                    received_token=None,
                    received_chain_id=None,
                    raw=exc.response,
                )
            raise
        return _read_status(self.name, answer)

    def close(self) -> None:
        """Release the pooled HTTP connections; the instance is unusable afterwards."""
        self._client.close()


class _QuoteReader:
    """Maps one ``LiFiStep`` to a SwapQuote; every failure names the field it concerns."""

    def __init__(self, provider: str, answer: Any, *, requested_to_address: str) -> None:
        self.provider = provider
        self.answer = answer
        self.requested_to_address = requested_to_address

    def read(self) -> SwapQuote:
        step = self._object(self.answer, "the quote")
        action = self._object(step.get("action"), "action")
        estimate = self._object(step.get("estimate"), "estimate")
        request = self._object(step.get("transactionRequest"), "transactionRequest")
        from_token = self._address(
            self._object(action.get("fromToken"), "action.fromToken").get("address"),
            "action.fromToken.address",
        )
        to_token = self._address(
            self._object(action.get("toToken"), "action.toToken").get("address"), "action.toToken.address"
        )
        from_chain_id = self._int(action.get("fromChainId"), "action.fromChainId")
        approval = estimate.get("approvalAddress")
        return SwapQuote(
            provider_quote_id=self._str(step.get("id"), "id"),
            tool=self._str(step.get("tool"), "tool"),
            from_chain_id=from_chain_id,
            from_token=from_token,
            from_amount_raw=self._amount(action.get("fromAmount"), "action.fromAmount"),
            to_chain_id=self._int(action.get("toChainId"), "action.toChainId"),
            to_token=to_token,
            to_address=self._address(
                action.get("toAddress") or self.requested_to_address, "action.toAddress"
            ),
            to_amount_raw=self._amount(estimate.get("toAmount"), "estimate.toAmount"),
            to_amount_min_raw=self._amount(estimate.get("toAmountMin"), "estimate.toAmountMin"),
            slippage=self._decimal(action.get("slippage"), "action.slippage"),
            from_amount_usd=self._optional_decimal(estimate.get("fromAmountUSD"), "estimate.fromAmountUSD"),
            to_amount_usd=self._optional_decimal(estimate.get("toAmountUSD"), "estimate.toAmountUSD"),
            fee_costs_usd=self._costs_usd(estimate.get("feeCosts"), "estimate.feeCosts"),
            gas_costs_usd=self._costs_usd(estimate.get("gasCosts"), "estimate.gasCosts"),
            execution_duration_seconds=self._duration(estimate.get("executionDuration")),
            transaction=self._transaction(request, from_chain_id),
            approval_address=(
                None if from_token == NATIVE_COIN else self._address(approval, "estimate.approvalAddress")
            ),
            raw=step,
        )

    def _transaction(self, request: dict[str, Any], from_chain_id: int) -> EvmTransaction:
        """``transactionRequest``: quantities are 0x-hex strings (``value``, ``gasLimit``)."""
        data = request.get("data")
        if not isinstance(data, str) or not _HEX_DATA.fullmatch(data):
            raise self._error("transactionRequest.data is not 0x-hex bytes")
        value = request.get("value", "0x0")
        gas_limit = request.get("gasLimit")
        chain_id = request.get("chainId", from_chain_id)
        return EvmTransaction(
            chain_id=self._hex_or_int(chain_id, "transactionRequest.chainId"),
            to=self._address(request.get("to"), "transactionRequest.to"),
            data=data,
            value=self._hex_or_int(value, "transactionRequest.value"),
            gas_limit=None
            if gas_limit is None
            else self._hex_or_int(gas_limit, "transactionRequest.gasLimit"),
        )

    def _costs_usd(self, costs: Any, where: str) -> Decimal:
        if costs is None:
            return Decimal(0)
        if not isinstance(costs, list):
            raise self._error(f"{where} is not a list")
        total = Decimal(0)
        for index, cost in enumerate(costs):
            item = self._object(cost, f"{where}[{index}]")
            total += self._decimal(item.get("amountUSD"), f"{where}[{index}].amountUSD")
        return total

    def _duration(self, value: Any) -> int | None:
        if value is None:
            return None
        return int(self._decimal(value, "estimate.executionDuration").to_integral_value())

    def _object(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._error(f"{where} is missing or not an object")
        return value

    def _str(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self._error(f"{where} is missing")
        return value

    def _int(self, value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._error(f"{where} is not an integer")
        return value

    def _amount(self, value: Any, where: str) -> int:
        """Base units: LI-FI sends them as decimal strings."""
        if not isinstance(value, str) or not _DECIMAL_INTEGER.fullmatch(value):
            raise self._error(f"{where} is not an amount in base units: {value!r}")
        return int(value)

    def _decimal(self, value: Any, where: str) -> Decimal:
        """A number LI-FI sends as a string ("99.8") or a JSON number (slippage 0.005)."""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._error(f"{where} is not a number: {value!r}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self._error(f"{where} is not a number: {value!r}") from None
        if not number.is_finite():
            raise self._error(f"{where} is not a number: {value!r}")
        return number

    def _optional_decimal(self, value: Any, where: str) -> Decimal | None:
        return None if value is None or value == "" else self._decimal(value, where)

    def _hex_or_int(self, value: Any, where: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and _HEX_QUANTITY.fullmatch(value):
            return int(value, 16)
        raise self._error(f"{where} is not a hex quantity: {value!r}")

    def _address(self, value: Any, where: str) -> str:
        if isinstance(value, str):
            try:
                return to_checksum_address(value)
            except ValueError:
                pass
        raise self._error(f"{where} is not an EVM address: {value!r}")

    def _error(self, problem: str) -> ProviderError:
        return ProviderError(
            self.provider, f"unexpected quote answer: {problem}", response=_short(self.answer)
        )


def _read_status(provider: str, answer: Any) -> SwapStatus:
    """Map a ``StatusResponse``; ``receiving`` may be just ``{"chainId": ...}`` while pending."""

    def error(problem: str) -> ProviderError:
        return ProviderError(provider, f"unexpected status answer: {problem}", response=_short(answer))

    if not isinstance(answer, dict):
        raise error("not a JSON object")
    status = answer.get("status")
    if not isinstance(status, str) or not status:
        raise error("no status")
    sending = answer.get("sending")
    receiving = answer.get("receiving")
    sending = sending if isinstance(sending, dict) else {}
    receiving = receiving if isinstance(receiving, dict) else {}

    amount = receiving.get("amount")
    if amount is not None and (not isinstance(amount, str) or not _DECIMAL_INTEGER.fullmatch(amount)):
        raise error(f"receiving.amount is not an amount in base units: {amount!r}")
    token = receiving.get("token")
    token_address = token.get("address") if isinstance(token, dict) else None
    received_token = None
    if token_address is not None:
        try:
            received_token = to_checksum_address(token_address)
        except (TypeError, ValueError):
            raise error(f"receiving.token.address is not an EVM address: {token_address!r}") from None
    chain_id = receiving.get("chainId")
    if chain_id is not None and (isinstance(chain_id, bool) or not isinstance(chain_id, int)):
        raise error(f"receiving.chainId is not an integer: {chain_id!r}")

    return SwapStatus(
        status=STATUSES.get(status, "pending"),
        substatus=_optional_str(answer.get("substatus")),
        substatus_message=_optional_str(answer.get("substatusMessage")),
        sending_tx_hash=_optional_str(sending.get("txHash")),
        receiving_tx_hash=_optional_str(receiving.get("txHash")),
        received_amount_raw=None if amount is None else int(amount),
        received_token=received_token,
        received_chain_id=chain_id,
        raw=answer,
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _short(answer: Any) -> Any:
    """The answer for a ProviderError: as is when small, else its text cut to about 2 KB."""
    text = repr(answer)
    return answer if len(text) <= 2048 else text[:2048] + "...[truncated]"
