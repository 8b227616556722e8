"""EvmChainClient's health probe, receipts, ERC-20 transfer scans and transaction sending:
against the local chain for behaviour, against a scripted node for answers it cannot give."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from pytest_httpserver import HTTPServer
from web3 import Web3
from werkzeug.wrappers import Request, Response

from demo.localchain.chain import LocalChain, load_artifact
from providers.base import EvmTransaction, TokenTransfer
from providers.chains.evm import EvmChainClient
from providers.chains.evm.client import TRANSFER_TOPIC
from providers.errors import ProviderError
from tests.contract.evm.fake_rpc import calls, json_rpc, node

FAST_TIMEOUT = 0.3
UNKNOWN_HASH = "0x" + "ab" * 32


@pytest.fixture
def client(local_chain: LocalChain) -> EvmChainClient:
    return EvmChainClient(chain_id=local_chain.chain_id, rpc_url=local_chain.rpc_url, timeout=5)


def fake_client(httpserver: HTTPServer) -> EvmChainClient:
    return EvmChainClient(chain_id=1, rpc_url=httpserver.url_for("/"), timeout=FAST_TIMEOUT)


def fresh_address() -> str:
    return str(Account.create().address)


def transfer_data(recipient: str, amount: int) -> str:
    token = Web3().eth.contract(abi=load_artifact("TestToken")["abi"])
    return str(token.encode_abi("transfer", args=[Web3.to_checksum_address(recipient), amount]))


def topic(address: str) -> str:
    return "0x" + address[2:].lower().rjust(64, "0")


def mined_in(client: EvmChainClient, tx_hash: str) -> int:
    receipt = client.receipt(tx_hash=tx_hash)
    assert receipt is not None
    return receipt.block_number


# --- health_check and block_number -----------------------------------------------------


def test_health_check_passes_on_the_configured_chain(client: EvmChainClient) -> None:
    client.health_check()


def test_health_check_fails_when_the_rpc_serves_another_chain(local_chain: LocalChain) -> None:
    client = EvmChainClient(chain_id=42161, rpc_url=local_chain.rpc_url, timeout=5)

    with pytest.raises(ProviderError, match=f"serves chain id {local_chain.chain_id}") as excinfo:
        client.health_check()

    assert (excinfo.value.provider, excinfo.value.retryable) == ("evm:42161", False)


def test_health_check_asks_the_chain_id_on_every_probe(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(node({"eth_blockNumber": {"result": "0x10"}}))
    )
    client = fake_client(httpserver)

    client.health_check()
    client.health_check()

    assert [call["method"] for call in calls(httpserver.log)] == ["eth_chainId", "eth_blockNumber"] * 2


def test_health_check_fails_when_the_block_number_does_not_answer(httpserver: HTTPServer) -> None:
    error = {"code": -32603, "message": "header not found"}
    httpserver.expect_request("/").respond_with_handler(json_rpc(node({"eth_blockNumber": {"error": error}})))

    with pytest.raises(ProviderError, match="header not found") as excinfo:
        fake_client(httpserver).health_check()

    assert excinfo.value.retryable is False


def test_health_check_of_an_unreachable_rpc_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = EvmChainClient(chain_id=1, rpc_url=f"http://127.0.0.1:{port}/v2/SECRET-KEY", timeout=1)

    with pytest.raises(ProviderError) as excinfo:
        client.health_check()

    assert excinfo.value.retryable is True
    assert "SECRET-KEY" not in str(excinfo.value)


def test_block_number_follows_the_chain(local_chain: LocalChain, client: EvmChainClient) -> None:
    before = client.block_number()

    local_chain.send_eth(local_chain.deployer, fresh_address(), 1)

    assert client.block_number() == before + 1
    assert local_chain.mine(3) == client.block_number() == before + 4


# --- receipt -----------------------------------------------------------------------------


def test_receipt_of_a_mined_transfer_and_its_growing_confirmations(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    recipient = fresh_address()
    tx_hash = local_chain.send_eth(local_chain.deployer, recipient, 10**15)

    receipt = client.receipt(tx_hash=tx_hash.upper().replace("0X", "0x"))

    assert receipt is not None
    assert receipt.tx_hash == tx_hash.lower()
    assert receipt.block_number == client.block_number()
    assert (receipt.success, receipt.from_address, receipt.to_address) == (
        True,
        local_chain.deployer,
        recipient,
    )
    assert receipt.confirmations == 1

    local_chain.mine(2)
    later = client.receipt(tx_hash=tx_hash)

    assert later is not None
    assert (later.block_number, later.confirmations) == (receipt.block_number, 3)


def test_receipt_of_a_reverted_transaction_is_not_a_success(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    """Mined with an explicit gas limit (no estimate to stop it), the transfer reverts in the block."""
    sender = Account.create()
    local_chain.send_eth(local_chain.deployer, sender.address, 10**18)
    token = local_chain.deploy_token("FAIL", 6, 1000)
    unsigned = client.fill_transaction(
        from_address=sender.address,
        transaction=EvmTransaction(
            chain_id=local_chain.chain_id, to=token, data=transfer_data(fresh_address(), 1), gas_limit=100_000
        ),
    )
    tx_hash = client.send_raw_transaction(bytes(sender.sign_transaction(unsigned).raw_transaction))

    receipt = client.receipt(tx_hash=tx_hash)

    assert receipt is not None
    assert (receipt.success, receipt.from_address, receipt.to_address) == (False, sender.address, token)


def test_receipt_of_a_contract_creation_has_no_recipient(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    artifact = load_artifact("TestToken")
    factory = local_chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor("Created", "NEW", 6, 1).transact({"from": local_chain.deployer})
    local_chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5)

    receipt = client.receipt(tx_hash=Web3.to_hex(tx_hash))

    assert receipt is not None
    assert (receipt.success, receipt.to_address) == (True, None)


def test_receipt_of_an_unknown_transaction_is_none(client: EvmChainClient) -> None:
    assert client.receipt(tx_hash=UNKNOWN_HASH) is None


def test_receipt_of_a_malformed_hash_is_a_programming_error(client: EvmChainClient) -> None:
    with pytest.raises(ValueError, match="not a transaction hash"):
        client.receipt(tx_hash="0x1234")


def test_receipt_of_a_pending_transaction_is_none(httpserver: HTTPServer) -> None:
    """Some nodes answer a pending transaction's receipt with a null block."""
    pending: dict[str, Any] = {
        "transactionHash": UNKNOWN_HASH,
        "blockHash": None,
        "blockNumber": None,
        "transactionIndex": None,
        "from": fresh_address(),
        "to": fresh_address(),
        "status": "0x1",
        "logs": [],
    }
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(node({"eth_getTransactionReceipt": {"result": pending}}))
    )

    assert fake_client(httpserver).receipt(tx_hash=UNKNOWN_HASH) is None


def test_confirmations_never_drop_below_one_behind_a_lagging_node(httpserver: HTTPServer) -> None:
    mined: dict[str, Any] = {
        "transactionHash": UNKNOWN_HASH,
        "blockHash": "0x" + "cd" * 32,
        "blockNumber": "0x20",
        "transactionIndex": "0x0",
        "from": fresh_address(),
        "to": None,
        "contractAddress": fresh_address(),
        "status": "0x1",
        "logs": [],
        "gasUsed": "0x5208",
        "cumulativeGasUsed": "0x5208",
    }
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(
            node({"eth_getTransactionReceipt": {"result": mined}, "eth_blockNumber": {"result": "0x1e"}})
        )
    )

    receipt = fake_client(httpserver).receipt(tx_hash=UNKNOWN_HASH)

    assert receipt is not None
    assert (receipt.block_number, receipt.confirmations) == (32, 1)


def test_receipt_rpc_error_is_a_provider_error_not_none(httpserver: HTTPServer) -> None:
    error = {"code": -32005, "message": "daily request count exceeded"}
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(node({"eth_getTransactionReceipt": {"error": error}}))
    )

    with pytest.raises(ProviderError, match="daily request count") as excinfo:
        fake_client(httpserver).receipt(tx_hash=UNKNOWN_HASH)

    assert excinfo.value.retryable is True


# --- token_transfers_to ------------------------------------------------------------------


def test_token_transfers_to_finds_the_transfers_of_the_given_tokens_in_an_inclusive_range(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    usdc = local_chain.deploy_token("USDC", 6, 10**12)
    weth = local_chain.deploy_token("WETH", 18, 10**24)
    other = local_chain.deploy_token("OTHER", 18, 10**24)
    holder, bystander = fresh_address(), fresh_address()
    first = local_chain.transfer_token(usdc, local_chain.deployer, holder, 1_000_000)
    local_chain.transfer_token(other, local_chain.deployer, holder, 5)
    local_chain.transfer_token(usdc, local_chain.deployer, bystander, 7)
    last = local_chain.transfer_token(weth, local_chain.deployer, holder, 10**18 + 1)
    first_block, last_block = mined_in(client, first), mined_in(client, last)
    tokens = [usdc.lower(), weth]

    found = client.token_transfers_to(
        address=holder.lower(), tokens=tokens, from_block=first_block, to_block=last_block
    )

    assert found == [
        TokenTransfer(
            tx_hash=first,
            log_index=0,
            block_number=first_block,
            token_address=usdc,
            from_address=local_chain.deployer,
            to_address=holder,
            raw=1_000_000,
        ),
        TokenTransfer(
            tx_hash=last,
            log_index=0,
            block_number=last_block,
            token_address=weth,
            from_address=local_chain.deployer,
            to_address=holder,
            raw=10**18 + 1,
        ),
    ]
    assert [
        t.tx_hash
        for t in client.token_transfers_to(
            address=holder, tokens=tokens, from_block=first_block, to_block=first_block
        )
    ] == [first]
    assert [
        t.tx_hash
        for t in client.token_transfers_to(
            address=holder, tokens=tokens, from_block=first_block + 1, to_block=last_block
        )
    ] == [last]
    assert (
        client.token_transfers_to(
            address=holder, tokens=tokens, from_block=last_block + 1, to_block=local_chain.mine()
        )
        == []
    )
    assert (
        client.token_transfers_to(
            address=bystander, tokens=[other], from_block=first_block, to_block=last_block
        )
        == []
    )


def test_token_transfers_to_without_tokens_or_with_an_empty_range_asks_nothing(
    httpserver: HTTPServer,
) -> None:
    client = fake_client(httpserver)

    assert client.token_transfers_to(address=fresh_address(), tokens=[], from_block=0, to_block=10) == []
    assert (
        client.token_transfers_to(
            address=fresh_address(), tokens=[fresh_address()], from_block=11, to_block=10
        )
        == []
    )
    assert httpserver.log == []
    with pytest.raises(ValueError, match="negative"):
        client.token_transfers_to(
            address=fresh_address(), tokens=[fresh_address()], from_block=-1, to_block=1
        )


def log_entry(
    token: str, sender: str, recipient: str, raw: int, *, block: int, index: int, **extra: Any
) -> dict[str, Any]:
    return {
        "address": token.lower(),
        "topics": [TRANSFER_TOPIC, topic(sender), topic(recipient)],
        "data": "0x" + raw.to_bytes(32, "big").hex(),
        "blockNumber": hex(block),
        "blockHash": "0x" + "11" * 32,
        "transactionHash": "0x" + f"{block:02x}{index:02x}".rjust(64, "0"),
        "transactionIndex": "0x0",
        "logIndex": hex(index),
        "removed": False,
        **extra,
    }


def test_token_transfers_to_sends_one_get_logs_and_keeps_only_erc20_transfers_in_order(
    httpserver: HTTPServer,
) -> None:
    token, sender, holder = fresh_address(), fresh_address(), fresh_address()
    erc721 = log_entry(token, sender, holder, 0, block=9, index=1)
    erc721["topics"] = [*erc721["topics"], "0x" + "00" * 31 + "07"]
    erc721["data"] = "0x"
    logs = [
        log_entry(token, sender, holder, 3, block=12, index=0),
        log_entry(token, sender, holder, 2, block=10, index=4),
        log_entry(token, sender, holder, 1, block=10, index=2),
        log_entry(token, sender, holder, 99, block=11, index=0, removed=True),
        erc721,
        log_entry(token, sender, fresh_address(), 98, block=11, index=1),
        log_entry(fresh_address(), sender, holder, 97, block=11, index=2),
    ]
    httpserver.expect_request("/").respond_with_handler(json_rpc(node({"eth_getLogs": {"result": logs}})))

    found = fake_client(httpserver).token_transfers_to(
        address=holder, tokens=[token], from_block=9, to_block=12
    )

    assert [(t.block_number, t.log_index, t.raw) for t in found] == [(10, 2, 1), (10, 4, 2), (12, 0, 3)]
    assert {(t.token_address, t.from_address, t.to_address) for t in found} == {(token, sender, holder)}
    get_logs = [call for call in calls(httpserver.log) if call["method"] == "eth_getLogs"]
    assert [call["params"] for call in get_logs] == [
        [
            {
                "fromBlock": "0x9",
                "toBlock": "0xc",
                "address": [token],
                "topics": [TRANSFER_TOPIC, None, topic(holder)],
            }
        ]
    ]


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        ({"code": -32005, "message": "query returned more than 10000 results"}, True),
        ({"code": -32602, "message": "Log response size exceeded: up to a 2K block range"}, False),
    ],
)
def test_token_transfers_to_passes_on_the_nodes_refusal(
    httpserver: HTTPServer, error: dict[str, Any], retryable: bool
) -> None:
    httpserver.expect_request("/").respond_with_handler(json_rpc(node({"eth_getLogs": {"error": error}})))

    with pytest.raises(ProviderError, match=error["message"][:20]) as excinfo:
        fake_client(httpserver).token_transfers_to(
            address=fresh_address(), tokens=[fresh_address()], from_block=0, to_block=100_000
        )

    assert excinfo.value.retryable is retryable
    assert excinfo.value.response["error"] == error


# --- fill_transaction and send_raw_transaction ----------------------------------------------


def test_fill_transaction_on_an_eip1559_chain(local_chain: LocalChain, client: EvmChainClient) -> None:
    sender = Account.create()
    local_chain.send_eth(local_chain.deployer, sender.address, 10**18)
    recipient = fresh_address()
    base_fee = local_chain.w3.eth.get_block("latest")["baseFeePerGas"]

    filled = client.fill_transaction(
        from_address=sender.address,
        transaction=EvmTransaction(chain_id=local_chain.chain_id, to=recipient.lower(), value=5),
    )

    assert filled["chainId"] == local_chain.chain_id
    assert (filled["to"], filled["value"], filled["data"]) == (recipient, 5, "0x")
    assert (filled["nonce"], filled["gas"]) == (0, 21_000)
    assert filled["maxFeePerGas"] == 2 * base_fee + filled["maxPriorityFeePerGas"]
    assert "gasPrice" not in filled


def test_fill_transaction_gives_contract_calls_headroom_and_keeps_a_given_gas_limit(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    token = local_chain.deploy_token("GAS", 6, 10**9)
    call = EvmTransaction(chain_id=local_chain.chain_id, to=token, data=transfer_data(fresh_address(), 1))
    estimate = local_chain.w3.eth.estimate_gas(
        {"from": local_chain.deployer, "to": token, "data": call.data}  # type: ignore[typeddict-item]
    )

    filled = client.fill_transaction(from_address=local_chain.deployer, transaction=call)
    fixed = client.fill_transaction(
        from_address=local_chain.deployer,
        transaction=EvmTransaction(chain_id=call.chain_id, to=token, data=call.data, gas_limit=80_000),
    )

    assert estimate < filled["gas"] <= estimate * 6 // 5 + 1
    assert fixed["gas"] == 80_000


def test_fill_transaction_refuses_a_call_that_would_revert(
    local_chain: LocalChain, client: EvmChainClient
) -> None:
    token = local_chain.deploy_token("REV", 6, 1)
    too_much = transfer_data(fresh_address(), 5)

    with pytest.raises(ProviderError, match=r"would revert.*exceeds balance") as excinfo:
        client.fill_transaction(
            from_address=local_chain.deployer,
            transaction=EvmTransaction(chain_id=local_chain.chain_id, to=token, data=too_much),
        )

    assert excinfo.value.retryable is False


def test_fill_transaction_uses_a_gas_price_where_blocks_have_no_base_fee(httpserver: HTTPServer) -> None:
    legacy_block = {
        "number": "0x10",
        "hash": "0x" + "22" * 32,
        "timestamp": "0x6553f100",
        "gasLimit": "0x1c9c380",
    }
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(
            node(
                {
                    "eth_getTransactionCount": {"result": "0x7"},
                    "eth_estimateGas": {"result": "0x5208"},
                    "eth_getBlockByNumber": {"result": legacy_block},
                    "eth_gasPrice": {"result": "0x3b9aca00"},
                }
            )
        )
    )
    sender, recipient = fresh_address(), fresh_address()

    filled = fake_client(httpserver).fill_transaction(
        from_address=sender, transaction=EvmTransaction(chain_id=1, to=recipient, value=1)
    )

    assert (filled["nonce"], filled["gas"], filled["gasPrice"]) == (7, 21_000, 10**9)
    assert "maxFeePerGas" not in filled
    nonce_call = next(call for call in calls(httpserver.log) if call["method"] == "eth_getTransactionCount")
    assert nonce_call["params"] == [sender, "pending"]


def test_fill_transaction_refuses_bad_input(client: EvmChainClient, local_chain: LocalChain) -> None:
    sender = fresh_address()
    bad = [
        (EvmTransaction(chain_id=1, to=sender), "for chain 1"),
        (EvmTransaction(chain_id=local_chain.chain_id, to="0x1234"), "not an EVM address"),
        (EvmTransaction(chain_id=local_chain.chain_id, to=sender, value=-1), "negative"),
        (EvmTransaction(chain_id=local_chain.chain_id, to=sender, data="0xabc"), "hex bytes"),
        (EvmTransaction(chain_id=local_chain.chain_id, to=sender, gas_limit=0), "positive"),
    ]
    for transaction, message in bad:
        with pytest.raises(ValueError, match=message):
            client.fill_transaction(from_address=sender, transaction=transaction)


def signed_raw() -> tuple[bytes, str]:
    """A signed transaction for chain 1 and its hash."""
    signed = Account.create().sign_transaction(
        {"chainId": 1, "to": fresh_address(), "value": 1, "nonce": 0, "gas": 21_000, "gasPrice": 10**9}
    )
    return bytes(signed.raw_transaction), Web3.to_hex(signed.hash)


def test_send_raw_transaction_returns_the_nodes_hash(httpserver: HTTPServer) -> None:
    raw, tx_hash = signed_raw()
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(node({"eth_sendRawTransaction": {"result": tx_hash}}))
    )

    assert fake_client(httpserver).send_raw_transaction(raw) == tx_hash
    send = next(call for call in calls(httpserver.log) if call["method"] == "eth_sendRawTransaction")
    assert send["params"] == ["0x" + raw.hex()]


def test_sending_bytes_the_node_already_has_is_a_success(httpserver: HTTPServer) -> None:
    raw, tx_hash = signed_raw()
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(node({"eth_sendRawTransaction": {"error": {"code": -32000, "message": "already known"}}}))
    )

    assert fake_client(httpserver).send_raw_transaction(raw) == tx_hash


def test_a_refused_transaction_is_a_definite_non_retryable_error(httpserver: HTTPServer) -> None:
    raw, _ = signed_raw()
    error = {"code": -32000, "message": "insufficient funds for gas * price + value"}
    httpserver.expect_request("/").respond_with_handler(
        json_rpc(node({"eth_sendRawTransaction": {"error": error}}))
    )

    with pytest.raises(ProviderError, match="insufficient funds") as excinfo:
        fake_client(httpserver).send_raw_transaction(raw)

    assert excinfo.value.retryable is False
    assert "may have been broadcast" not in str(excinfo.value)


@pytest.fixture
def send_stalls(httpserver: HTTPServer) -> Iterator[str]:
    """A node that answers eth_chainId and never answers eth_sendRawTransaction in time."""
    release = threading.Event()
    answer = json_rpc(node({}))

    def handler(request: Request) -> Response:
        if json.loads(request.get_data())["method"] == "eth_sendRawTransaction":
            release.wait(timeout=5)
            return Response(status=504)
        return answer(request)

    httpserver.expect_request("/").respond_with_handler(handler)
    yield httpserver.url_for("/")
    release.set()


def test_a_send_without_an_answer_names_the_hash_and_is_not_retryable(send_stalls: str) -> None:
    raw, tx_hash = signed_raw()
    client = EvmChainClient(chain_id=1, rpc_url=send_stalls, timeout=FAST_TIMEOUT)

    with pytest.raises(ProviderError, match="did not answer") as excinfo:
        client.send_raw_transaction(raw)

    assert excinfo.value.retryable is False
    assert f"{tx_hash} may have been broadcast" in str(excinfo.value)


def test_a_send_answered_by_a_5xx_has_an_unknown_outcome(httpserver: HTTPServer) -> None:
    raw, tx_hash = signed_raw()
    answer = json_rpc(node({}))

    def handler(request: Request) -> Response:
        if json.loads(request.get_data())["method"] == "eth_sendRawTransaction":
            return Response("bad gateway", status=502)
        return answer(request)

    httpserver.expect_request("/").respond_with_handler(handler)

    with pytest.raises(ProviderError) as excinfo:
        fake_client(httpserver).send_raw_transaction(raw)

    assert (excinfo.value.status_code, excinfo.value.retryable) == (502, False)
    assert tx_hash in str(excinfo.value)


def test_a_send_refused_with_a_429_stays_retryable(httpserver: HTTPServer) -> None:
    raw, _ = signed_raw()
    answer = json_rpc(node({}))

    def handler(request: Request) -> Response:
        if json.loads(request.get_data())["method"] == "eth_sendRawTransaction":
            return Response("slow down", status=429)
        return answer(request)

    httpserver.expect_request("/").respond_with_handler(handler)

    with pytest.raises(ProviderError) as excinfo:
        fake_client(httpserver).send_raw_transaction(raw)

    assert (excinfo.value.status_code, excinfo.value.retryable) == (429, True)
