"""The only module that talks to Ostium: its price service (HTTP), its subgraph (GraphQL over
HTTP) and its contracts on Arbitrum (JSON-RPC reads).

Answers are returned as the services sent them (decoded JSON, raw ``eth_call`` bytes); the
adapter maps them to our types. Every failure is a ``ProviderError`` of provider "ostium".

The RPC goes through ``EvmChainClient`` (web3's ``HTTPProvider``) rather than the shared
HTTP session: RPC URLs usually carry an API key in their path, which the session would log
and quote in its errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx
from eth_typing import ChecksumAddress, HexStr
from web3.exceptions import ContractLogicError, Web3Exception

from providers.base import TransactionReceipt
from providers.chains.evm.client import EvmChainClient
from providers.errors import ProviderError
from providers.http import ProviderHttpClient

PROVIDER = "ostium"
# EIP-1474 "limit exceeded": the node's rate limit, worth retrying later.


def split_url(url: str) -> tuple[str, str]:
    """``(origin, path with query)``: the shared session appends a slash to its base URL's path,
    so a full endpoint URL is given to it as an origin plus a path."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return f"{parsed.scheme}://{parsed.netloc.decode()}", parsed.raw_path.decode() or "/"


class OstiumClient:
    def __init__(
        self,
        *,
        price_url: str,
        subgraph_url: str,
        rpc_url: str,
        chain_id: int,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        price_origin, self._price_path = split_url(price_url)
        subgraph_origin, self._subgraph_path = split_url(subgraph_url)
        options: dict[str, Any] = {
            "timeout": timeout,
            "max_attempts": max_attempts,
            "backoff_seconds": backoff_seconds,
        }
        self._prices = ProviderHttpClient(PROVIDER, price_origin, **options)
        self._subgraph = ProviderHttpClient(PROVIDER, subgraph_origin, **options)
        self._chain = EvmChainClient(chain_id=chain_id, rpc_url=rpc_url, timeout=timeout)

    def latest_prices(self, *, retry: bool = True) -> list[dict[str, Any]]:
        """GET the price service: one entry per feed,
        ``{"from", "to", "bid", "mid", "ask", "isMarketOpen", "timestampSeconds", ...}``."""
        answer = self._prices.request("GET", self._price_path, idempotent=retry)
        if not isinstance(answer, list):
            raise ProviderError(
                PROVIDER, "the price service answered something other than a list", response=answer
            )
        return [entry for entry in answer if isinstance(entry, dict)]

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL read to the subgraph; returns its ``data``.

        Retried like a GET: a query changes nothing. An answer carrying ``errors`` (a query
        the schema refuses, an indexing failure) is a non-retryable error quoting them.
        """
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = variables
        answer = self._subgraph.request("POST", self._subgraph_path, json=body, idempotent=True)
        if not isinstance(answer, dict):
            raise ProviderError(
                PROVIDER, "the subgraph answered something other than an object", response=answer
            )
        errors = answer.get("errors")
        if errors:
            messages = (
                [e.get("message") for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
            )
            detail = "; ".join(m for m in messages if isinstance(m, str)) or "no message"
            raise ProviderError(PROVIDER, f"the subgraph refused the query: {detail}", response=answer)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise ProviderError(PROVIDER, "the subgraph answer holds no data", response=answer)
        return data

    def call(self, *, to: ChecksumAddress, data: str) -> bytes:
        """``eth_call`` at the latest block; returns the raw answer."""
        with self._rpc_errors():
            return self._chain.eth_call(to=to, data=data)

    def receipt(self, *, tx_hash: str) -> TransactionReceipt | None:
        """The transaction's receipt, or None while it is not mined."""
        with self._rpc_errors():
            return self._chain.receipt(tx_hash=tx_hash)

    def revert_data(self, *, tx_hash: str, block_number: int) -> str:
        """Why a mined transaction reverted: it is replayed (``eth_call`` with its sender,
        target, data and value) on the state before its block; returns the error the node
        quotes (revert data included), "" when the replay no longer reverts."""
        with self._rpc_errors():
            sent = self._chain.web3.eth.get_transaction(HexStr(tx_hash))
            call: dict[str, Any] = {
                "from": sent["from"],
                "to": sent["to"],
                "data": sent["input"],
                "value": sent.get("value", 0),
                "gas": sent.get("gas"),
            }
            try:
                self._chain.web3.eth.call(cast(Any, call), max(block_number - 1, 0))
            except ContractLogicError as exc:
                return f"{exc} {exc.data!r}"
            except Web3Exception as exc:
                return str(exc)
        return ""

    def code(self, *, address: ChecksumAddress) -> bytes:
        """The deployed bytecode at ``address`` (empty for an account without code)."""
        with self._rpc_errors():
            return bytes(self._chain.web3.eth.get_code(address))

    def storage_word(self, *, address: ChecksumAddress, slot: int) -> bytes:
        with self._rpc_errors():
            return bytes(self._chain.web3.eth.get_storage_at(address, slot))

    def check_chain(self) -> None:
        """The RPC answers ``eth_chainId`` with the configured chain and ``eth_blockNumber``."""
        with self._rpc_errors():
            self._chain.health_check()

    def close(self) -> None:
        self._prices.close()
        self._subgraph.close()

    @contextmanager
    def _rpc_errors(self) -> Iterator[None]:
        """The chain client's errors relabelled as Ostium's (it never quotes the RPC URL,
        which may hold an API key)."""
        try:
            yield
        except ProviderError as exc:
            raise ProviderError(
                PROVIDER,
                f"RPC: {exc.message}",
                status_code=exc.status_code,
                response=exc.response,
                retryable=exc.retryable,
            ) from exc
