"""The local chain answers over HTTP the way a node does, so clients under test see real JSON-RPC."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests
from eth_account import Account
from eth_typing import HexStr
from web3 import Web3
from web3.exceptions import TransactionNotFound

from demo.localchain.chain import LocalChain, load_artifact


def rpc(chain: LocalChain, payload: Any) -> Any:
    return requests.post(chain.rpc_url, json=payload, timeout=5).json()


def test_quantities_are_hex_and_batches_answer_in_order(local_chain: LocalChain) -> None:
    answers = rpc(
        local_chain,
        [
            {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []},
            {
                "jsonrpc": "2.0",
                "id": 8,
                "method": "eth_getBalance",
                "params": [local_chain.deployer, "latest"],
            },
            {"jsonrpc": "2.0", "id": 9, "method": "no_such_method", "params": []},
        ],
    )

    assert [answer["id"] for answer in answers] == [7, 8, 9]
    assert answers[0]["result"] == hex(local_chain.chain_id)
    assert answers[1]["result"].startswith("0x")
    assert int(answers[1]["result"], 16) > 0
    assert answers[2]["error"]["code"] == -32601


def test_a_revert_is_answered_like_geth(local_chain: LocalChain) -> None:
    token = local_chain.deploy_token("REV", 6, 100)
    contract = local_chain.w3.eth.contract(address=token, abi=load_artifact("TestToken")["abi"])
    too_much = contract.encode_abi("transfer", args=[Account.create().address, 101])

    answer = rpc(
        local_chain,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [{"from": local_chain.deployer, "to": token, "data": too_much}, "latest"],
        },
    )

    assert answer["error"]["code"] == 3
    assert "transfer amount exceeds balance" in answer["error"]["message"]


def test_an_http_client_reads_what_setup_wrote(local_chain: LocalChain) -> None:
    recipient = Account.create().address
    local_chain.send_eth(local_chain.deployer, recipient, 12345)

    over_http = Web3(Web3.HTTPProvider(local_chain.rpc_url))

    assert over_http.eth.chain_id == local_chain.chain_id
    assert over_http.eth.get_balance(recipient) == 12345


def test_a_reorg_drops_the_transactions_mined_after_the_snapshot(local_chain: LocalChain) -> None:
    recipient = Account.create().address
    snapshot = local_chain.snapshot()
    tx_hash = HexStr(local_chain.send_eth(local_chain.deployer, recipient, 777))
    over_http = Web3(Web3.HTTPProvider(local_chain.rpc_url))
    mined_in = over_http.eth.get_transaction_receipt(tx_hash)["blockNumber"]
    old_hash = over_http.eth.get_block(mined_in)["hash"]

    latest = local_chain.reorg(snapshot, new_blocks=2)

    assert latest == mined_in + 1
    with pytest.raises(TransactionNotFound):
        over_http.eth.get_transaction_receipt(tx_hash)
    assert over_http.eth.get_block(mined_in)["hash"] != old_hash
    assert over_http.eth.get_balance(recipient) == 0


def test_the_chain_serves_on_the_port_it_is_given() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    chain = LocalChain(port=port)
    try:
        assert chain.rpc_url == f"http://127.0.0.1:{port}"
        assert Web3(Web3.HTTPProvider(chain.rpc_url)).eth.chain_id == chain.chain_id
    finally:
        chain.stop()


def test_the_block_timer_mines_until_stopped(local_chain: LocalChain) -> None:
    start = local_chain.w3.eth.block_number
    local_chain.start_block_timer(0.05)
    try:
        deadline = time.monotonic() + 5
        while local_chain.w3.eth.block_number < start + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        local_chain.stop_block_timer()
    stopped_at = local_chain.w3.eth.block_number

    time.sleep(0.2)

    assert stopped_at >= start + 3
    assert local_chain.w3.eth.block_number == stopped_at
