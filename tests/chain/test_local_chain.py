"""The local chain answers over HTTP the way a node does, so clients under test see real JSON-RPC."""

from __future__ import annotations

from typing import Any

import requests
from eth_account import Account
from web3 import Web3

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
