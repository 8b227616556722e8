"""``ChainClient`` for any EVM chain, over web3.py's ``HTTPProvider``.

The RPC URL may embed an API key (Alchemy, Infura, ...), so it never appears in error
messages: requests' exception texts quote the URL and are not passed on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, cast

import requests
from eth_typing import ChecksumAddress
from web3 import HTTPProvider, Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError, Web3Exception, Web3RPCError

from providers.base import ChainClient, TokenBalance, TokenSpec
from providers.errors import ProviderError

NATIVE_SYMBOL = "ETH"
NATIVE_DECIMALS = 18

ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    }
]

EIP1271_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "isValidSignature",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "magicValue", "type": "bytes4"}],
    }
]
# bytes4(0x1626ba7e) as the ABI returns it: left-aligned in one 32-byte word.
EIP1271_MAGIC_WORD = bytes.fromhex("1626ba7e").ljust(32, b"\0")

# EIP-1474 "limit exceeded": the node's rate limit, worth retrying later.
RPC_LIMIT_EXCEEDED = -32005


class EvmChainClient(ChainClient):
    """Reads balances and EIP-1271 answers from one chain's JSON-RPC endpoint.

    web3's own retries are off: one call costs at most about ``timeout`` (per connect and
    per read), and callers decide from ``ProviderError.retryable`` whether to try again.
    The endpoint's ``eth_chainId`` is checked once, on first use, so a misconfigured URL
    cannot answer for the wrong chain.
    """

    def __init__(self, chain_id: int, rpc_url: str, timeout: float = 10.0) -> None:
        self.chain_id = chain_id
        self.timeout = timeout
        self.provider_name = f"evm:{chain_id}"
        self._provider = HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        # A contract answering with an OffchainLookup revert (EIP-3668) would otherwise make
        # web3 fetch URLs of the contract's choosing from our servers.
        self._provider.global_ccip_read_enabled = False
        self._web3 = Web3(self._provider)
        self._chain_id_checked = False

    @property
    def provider(self) -> HTTPProvider:
        """The web3 provider, for ``siwe.SiweMessage.verify(..., provider=...)`` (EIP-1271 fallback).

        The chain id is checked first: the contract at an address on another chain may have
        a different owner.
        """
        self._check_chain_id()
        return self._provider

    @property
    def web3(self) -> Web3:
        """The ``Web3`` instance over this chain's RPC (chain id checked first, as for ``provider``)."""
        self._check_chain_id()
        return self._web3

    def balances(self, *, address: str, tokens: list[TokenSpec]) -> list[TokenBalance]:
        owner = self._checksum(address)
        self._check_chain_id()
        w3 = self._web3
        # One JSON-RPC batch: a single round trip whatever the number of tokens.
        with self._translate_errors(), w3.batch_requests() as batch:
            batch.add(w3.eth.get_balance(owner))
            for token in tokens:
                erc20 = w3.eth.contract(address=self._checksum(token.address), abi=ERC20_ABI)
                batch.add(erc20.functions.balanceOf(owner))
            try:
                raw_amounts = cast(list[int], batch.execute())
            except BadFunctionCallOutput as exc:
                raise ProviderError(
                    self.provider_name,
                    "a token's balanceOf returned no data: is every configured token deployed on this chain?",
                ) from exc
        native = TokenBalance(
            symbol=NATIVE_SYMBOL,
            token_address=None,
            decimals=NATIVE_DECIMALS,
            raw=raw_amounts[0],
            amount=_scaled(raw_amounts[0], NATIVE_DECIMALS),
        )
        return [
            native,
            *(
                TokenBalance(
                    symbol=token.symbol,
                    token_address=self._checksum(token.address),
                    decimals=token.decimals,
                    raw=raw,
                    amount=_scaled(raw, token.decimals),
                )
                for token, raw in zip(tokens, raw_amounts[1:], strict=True)
            ),
        ]

    def is_valid_signature(self, *, address: str, message_hash: bytes, signature: bytes) -> bool:
        """EIP-1271 check, with a raw ``eth_call`` so that "no code" needs no extra request.

        An address without code answers an ``eth_call`` with empty data, which fails the
        comparison. Like OpenZeppelin's ``SignatureChecker``, the first 32 bytes of the answer
        must be the padded magic value: a contract whose fallback echoes its calldata would
        otherwise pass, since the magic value is the function's own selector.
        """
        if len(message_hash) != 32:
            raise ValueError("message_hash must be 32 bytes")
        contract = self._checksum(address)
        self._check_chain_id()
        wallet = self._web3.eth.contract(address=contract, abi=EIP1271_ABI)
        data = wallet.encode_abi("isValidSignature", args=[message_hash, signature])
        with self._translate_errors():
            try:
                answer = self._web3.eth.call({"to": contract, "data": data})
            except ContractLogicError:
                return False
        return bytes(answer[:32]) == EIP1271_MAGIC_WORD

    def _check_chain_id(self) -> None:
        if self._chain_id_checked:
            return
        with self._translate_errors():
            served = self._web3.eth.chain_id
        if served != self.chain_id:
            raise ProviderError(
                self.provider_name, f"the RPC serves chain id {served}, not the configured {self.chain_id}"
            )
        self._chain_id_checked = True

    def _checksum(self, address: str) -> ChecksumAddress:
        if not Web3.is_address(address):
            raise ValueError(f"not an EVM address: {address!r}")
        return Web3.to_checksum_address(address)

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        name = self.provider_name
        try:
            yield
        except requests.Timeout as exc:
            raise ProviderError(
                name, f"the RPC did not answer within {self.timeout}s", retryable=True
            ) from exc
        except requests.ConnectionError as exc:
            raise ProviderError(name, "cannot connect to the RPC", retryable=True) from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            raise ProviderError(
                name,
                f"the RPC answered HTTP {status}",
                status_code=status,
                retryable=status is None or status == 429 or status >= 500,
            ) from exc
        except requests.RequestException as exc:
            raise ProviderError(name, f"the RPC request failed ({type(exc).__name__})") from exc
        except Web3RPCError as exc:
            error = (exc.rpc_response or {}).get("error")
            code = error.get("code") if isinstance(error, dict) else None
            raise ProviderError(
                name,
                f"JSON-RPC error {code}: {exc.message}",
                response=exc.rpc_response,
                retryable=code == RPC_LIMIT_EXCEEDED,
            ) from exc
        except json.JSONDecodeError as exc:
            raise ProviderError(name, "the RPC answered something that is not JSON") from exc
        except Web3Exception as exc:
            raise ProviderError(name, f"unexpected RPC answer: {exc}") from exc


def _scaled(raw: int, decimals: int) -> Decimal:
    return Decimal(raw).scaleb(-decimals)
