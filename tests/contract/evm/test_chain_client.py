"""EvmChainClient against a real EVM over HTTP JSON-RPC, and against RPCs that misbehave."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from pytest_httpserver import HTTPServer
from siwe import SiweMessage
from werkzeug.wrappers import Request, Response

from demo.localchain.chain import LocalChain
from providers.base import TokenSpec
from providers.chains.evm import EvmChainClient
from providers.errors import ProviderError
from tests.contract.evm.fake_rpc import json_rpc

FAST_TIMEOUT = 0.3


@pytest.fixture(scope="module")
def tokens(local_chain: LocalChain) -> list[TokenSpec]:
    return [
        TokenSpec(symbol="USDC", address=local_chain.deploy_token("USDC", 6, 10**15), decimals=6),
        TokenSpec(symbol="WETH", address=local_chain.deploy_token("WETH", 18, 10**24), decimals=18),
    ]


@pytest.fixture
def client(local_chain: LocalChain) -> EvmChainClient:
    return EvmChainClient(chain_id=local_chain.chain_id, rpc_url=local_chain.rpc_url, timeout=5)


def fresh_address() -> str:
    return str(Account.create().address)


def test_balances_are_exact_decimals_after_transfers(
    local_chain: LocalChain, client: EvmChainClient, tokens: list[TokenSpec]
) -> None:
    usdc, weth = tokens
    holder = fresh_address()
    local_chain.send_eth(local_chain.deployer, holder, 1_500_000_000_000_000_001)
    local_chain.transfer_token(usdc.address, local_chain.deployer, holder, 1_000_000)
    local_chain.transfer_token(usdc.address, local_chain.deployer, holder, 234_567)
    local_chain.transfer_token(weth.address, local_chain.deployer, holder, 10**18 + 1)

    native, usdc_balance, weth_balance = client.balances(address=holder.lower(), tokens=tokens)

    assert (native.symbol, native.token_address, native.decimals) == ("ETH", None, 18)
    assert native.raw == 1_500_000_000_000_000_001
    assert native.amount == Decimal("1.500000000000000001")
    assert (usdc_balance.symbol, usdc_balance.token_address, usdc_balance.decimals) == (
        "USDC",
        usdc.address,
        6,
    )
    assert usdc_balance.raw == 1_234_567
    assert usdc_balance.amount == Decimal("1.234567")
    assert (weth_balance.symbol, weth_balance.token_address) == ("WETH", weth.address)
    assert weth_balance.amount == Decimal("1.000000000000000001")
    assert all(type(balance.amount) is Decimal for balance in (native, usdc_balance, weth_balance))


def test_fresh_address_has_zero_balances(client: EvmChainClient, tokens: list[TokenSpec]) -> None:
    balances = client.balances(address=fresh_address(), tokens=tokens)

    assert [(b.symbol, b.raw, b.amount) for b in balances] == [
        ("ETH", 0, Decimal(0)),
        ("USDC", 0, Decimal(0)),
        ("WETH", 0, Decimal(0)),
    ]


def test_balances_without_tokens_is_the_native_balance_only(client: EvmChainClient) -> None:
    assert [b.symbol for b in client.balances(address=fresh_address(), tokens=[])] == ["ETH"]


def test_token_without_contract_is_a_provider_error(client: EvmChainClient) -> None:
    missing = TokenSpec(symbol="NOPE", address=fresh_address(), decimals=6)

    with pytest.raises(ProviderError, match="deployed on this chain") as excinfo:
        client.balances(address=fresh_address(), tokens=[missing])

    assert excinfo.value.retryable is False


def signed_hash(text: str, private_key: bytes) -> tuple[bytes, bytes]:
    message = encode_defunct(text=text)
    return _hash_eip191_message(message), bytes(Account.sign_message(message, private_key).signature)


def test_eip1271_accepts_only_the_owners_signature(local_chain: LocalChain, client: EvmChainClient) -> None:
    owner, stranger = Account.create(), Account.create()
    wallet = local_chain.deploy_contract_wallet(owner.address)
    message_hash, by_owner = signed_hash("sign in", owner.key)
    _, by_stranger = signed_hash("sign in", stranger.key)
    other_hash, _ = signed_hash("something else", owner.key)

    assert client.is_valid_signature(address=wallet, message_hash=message_hash, signature=by_owner) is True
    assert (
        client.is_valid_signature(address=wallet, message_hash=message_hash, signature=by_stranger) is False
    )
    assert client.is_valid_signature(address=wallet, message_hash=other_hash, signature=by_owner) is False
    assert (
        client.is_valid_signature(address=wallet, message_hash=message_hash, signature=b"\x01" * 64) is False
    )


def test_eip1271_is_false_for_an_address_without_code(client: EvmChainClient) -> None:
    eoa = Account.create()
    message_hash, signature = signed_hash("sign in", eoa.key)

    assert (
        client.is_valid_signature(address=eoa.address, message_hash=message_hash, signature=signature)
        is False
    )


def test_eip1271_is_false_when_the_call_reverts(client: EvmChainClient, tokens: list[TokenSpec]) -> None:
    message_hash, signature = signed_hash("sign in", Account.create().key)

    assert (
        client.is_valid_signature(address=tokens[0].address, message_hash=message_hash, signature=signature)
        is False
    )


def test_siwe_verify_accepts_a_contract_wallet_through_the_clients_provider(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    owner = Account.create()
    wallet = local_chain.deploy_contract_wallet(owner.address)
    message = SiweMessage(
        domain="app.example",
        address=wallet,
        uri="https://app.example/login",
        version="1",
        chain_id=local_chain.chain_id,
        nonce="abcdefgh12345678",
        issued_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    signature = (
        "0x" + Account.sign_message(encode_defunct(text=message.prepare_message()), owner.key).signature.hex()
    )

    message.verify(signature, provider=client.provider)


def test_chain_id_mismatch_is_refused_before_any_read(local_chain: LocalChain) -> None:
    client = EvmChainClient(chain_id=1, rpc_url=local_chain.rpc_url, timeout=5)

    with pytest.raises(ProviderError, match=f"serves chain id {local_chain.chain_id}") as excinfo:
        client.balances(address=fresh_address(), tokens=[])

    assert excinfo.value.provider == "evm:1"
    assert excinfo.value.retryable is False
    with pytest.raises(ProviderError):
        _ = client.provider


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_rpc_is_retryable_and_keeps_the_url_secret() -> None:
    client = EvmChainClient(chain_id=1, rpc_url=f"http://127.0.0.1:{closed_port()}/v2/SECRET-KEY", timeout=1)

    with pytest.raises(ProviderError) as excinfo:
        client.balances(address=fresh_address(), tokens=[])

    assert excinfo.value.retryable is True
    assert excinfo.value.provider == "evm:1"
    assert "SECRET-KEY" not in str(excinfo.value)


@pytest.fixture
def stalled_rpc(httpserver: HTTPServer) -> Iterator[str]:
    """An RPC that accepts the connection and does not answer until the test is over."""
    release = threading.Event()

    def stall(request: Request) -> Response:
        release.wait(timeout=5)
        return Response(status=504)

    httpserver.expect_request("/").respond_with_handler(stall)
    yield httpserver.url_for("/")
    release.set()


def test_rpc_timeout_is_retryable(stalled_rpc: str) -> None:
    client = EvmChainClient(chain_id=1, rpc_url=stalled_rpc, timeout=FAST_TIMEOUT)
    started = time.monotonic()

    with pytest.raises(ProviderError, match="did not answer") as excinfo:
        client.balances(address=fresh_address(), tokens=[])

    assert excinfo.value.retryable is True
    assert time.monotonic() - started < 2


def chain_one_then(error: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def answer(call: dict[str, Any]) -> dict[str, Any]:
        return {"result": "0x1"} if call["method"] == "eth_chainId" else {"error": error}

    return answer


def test_json_rpc_error_is_a_provider_error(httpserver: HTTPServer) -> None:
    error = {"code": -32603, "message": "internal error"}
    httpserver.expect_request("/").respond_with_handler(json_rpc(chain_one_then(error)))
    client = EvmChainClient(chain_id=1, rpc_url=httpserver.url_for("/"), timeout=FAST_TIMEOUT)

    with pytest.raises(ProviderError, match="internal error") as excinfo:
        client.balances(address=fresh_address(), tokens=[])

    assert excinfo.value.retryable is False
    assert excinfo.value.response["error"] == error


def test_json_rpc_error_in_eip1271_call_is_a_provider_error_not_false(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(chain_one_then({"code": -32005, "message": "rate limit exceeded"}))
    )
    client = EvmChainClient(chain_id=1, rpc_url=httpserver.url_for("/"), timeout=FAST_TIMEOUT)

    with pytest.raises(ProviderError, match="rate limit") as excinfo:
        client.is_valid_signature(address=fresh_address(), message_hash=b"\0" * 32, signature=b"\0" * 65)

    assert excinfo.value.retryable is True


def test_json_rpc_error_on_the_chain_id_check(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_json(
        {"jsonrpc": "2.0", "id": 0, "error": {"code": -32601, "message": "method not found"}}
    )
    client = EvmChainClient(chain_id=1, rpc_url=httpserver.url_for("/"), timeout=FAST_TIMEOUT)

    with pytest.raises(ProviderError, match="method not found"):
        client.balances(address=fresh_address(), tokens=[])


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (401, False)])
def test_http_error_status(httpserver: HTTPServer, status: int, retryable: bool) -> None:
    httpserver.expect_request("/").respond_with_data("nope", status=status)
    client = EvmChainClient(chain_id=1, rpc_url=httpserver.url_for("/"), timeout=FAST_TIMEOUT)

    with pytest.raises(ProviderError) as excinfo:
        client.balances(address=fresh_address(), tokens=[])

    assert (excinfo.value.status_code, excinfo.value.retryable) == (status, retryable)


def test_an_answer_that_is_not_json_rpc_is_a_provider_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("<html>gateway</html>", content_type="text/html")
    client = EvmChainClient(chain_id=1, rpc_url=httpserver.url_for("/"), timeout=FAST_TIMEOUT)

    with pytest.raises(ProviderError):
        client.balances(address=fresh_address(), tokens=[])


def test_invalid_inputs_are_programming_errors(client: EvmChainClient) -> None:
    with pytest.raises(ValueError, match="not an EVM address"):
        client.balances(address="0x1234", tokens=[])
    with pytest.raises(ValueError, match="32 bytes"):
        client.is_valid_signature(address=fresh_address(), message_hash=b"short", signature=b"")
