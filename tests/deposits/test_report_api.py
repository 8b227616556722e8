"""``POST /api/v1/deposits`` against the local EVM: what a phone sees when it reports a hash."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from web3 import Web3

from accounts.services.wallets import wallet_mpc_create
from conftest import bearer_client
from demo.localchain.chain import LocalChain, load_artifact
from deposits.models import Deposit
from ledger.checks import ledger_check
from tests.deposits.chain_setup import CONFIRMATIONS, DepositChain, deposit_chain_configured
from tests.ledger.factories import new_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(local_chain: LocalChain) -> Iterator[DepositChain]:
    with deposit_chain_configured(local_chain) as configured:
        yield configured


@pytest.fixture
def trader(setup: DepositChain) -> tuple[Any, str]:
    user = new_user()
    wallet, _ = wallet_mpc_create(user=user, provider="local")
    return user, wallet.address


def _report(user: Any, chain_id: int, tx_hash: str) -> Any:
    return bearer_client(user).post(
        "/api/v1/deposits", {"chain_id": chain_id, "tx_hash": tx_hash}, format="json"
    )


def test_a_confirmed_usdc_transfer_reported_is_credited_before_the_answer(setup, trader):
    user, address = trader
    tx_hash = setup.chain.transfer_token(setup.usdc, setup.chain.deployer, address, 250_000_000)
    setup.chain.mine(CONFIRMATIONS)

    first = _report(user, setup.chain_id, tx_hash)
    assert first.status_code == 201, first.json()
    (deposit,) = first.json()["deposits"]
    assert (deposit["status"], deposit["amount"], deposit["credited_amount"]) == ("completed", "250", "250")
    assert deposit["token"] == {"symbol": "USDC", "address": setup.usdc, "decimals": 6, "native": False}
    assert deposit["tx_hash"] == tx_hash and deposit["source"] == "report"
    account = bearer_client(user).get("/api/v1/account").json()
    assert Decimal(account["available"]) == Decimal(250)

    again = _report(user, setup.chain_id, tx_hash)
    assert again.status_code == 200
    assert [d["id"] for d in again.json()["deposits"]] == [deposit["id"]]
    assert Decimal(bearer_client(user).get("/api/v1/account").json()["available"]) == Decimal(250)
    detail = bearer_client(user).get(f"/api/v1/deposits/{deposit['id']}").json()
    assert [t["to"] for t in detail["transitions"]] == ["detected", "confirming", "completed"]
    assert ledger_check() == []


def test_an_unconfirmed_transfer_is_accepted_and_waits(setup, trader):
    user, address = trader
    tx_hash = setup.chain.transfer_token(setup.usdc, setup.chain.deployer, address, 1_000_000)
    response = _report(user, setup.chain_id, tx_hash)
    assert response.status_code == 201
    (deposit,) = response.json()["deposits"]
    assert (deposit["status"], deposit["confirmations"], deposit["confirmations_required"]) == (
        "confirming",
        1,
        CONFIRMATIONS,
    )
    assert deposit["credited_amount"] is None
    assert Decimal(bearer_client(user).get("/api/v1/account").json()["available"]) == 0


def test_a_transfer_that_needs_a_swap_is_left_to_the_worker(setup, trader):
    user, address = trader
    tx_hash = setup.chain.transfer_token(setup.usdt, setup.chain.deployer, address, 3_000_000)
    setup.chain.mine(CONFIRMATIONS)
    response = _report(user, setup.chain_id, tx_hash)
    assert response.status_code == 201
    (deposit,) = response.json()["deposits"]
    assert deposit["status"] == "quoting" and deposit["swaps"] == []
    assert deposit["token"]["symbol"] == "USDT" and deposit["amount"] == "3"


def _reverted(chain: LocalChain, token: str, recipient: str) -> str:
    contract = chain.w3.eth.contract(
        address=Web3.to_checksum_address(token), abi=load_artifact("TestToken")["abi"]
    )
    tx_hash = contract.functions.transfer(recipient, 1).transact(
        {"from": chain.accounts[6].address, "gas": 90_000}
    )
    return Web3.to_hex(tx_hash)


def test_refused_reports_answer_clear_codes_and_record_nothing(setup, trader):
    user, address = trader
    other = new_user()
    other_wallet, _ = wallet_mpc_create(user=other, provider="local")
    xyz = setup.chain.deploy_token("XYZ", 18, 10**24)
    cases = {
        "not_your_deposit_address": (
            400,
            setup.chain.transfer_token(setup.usdc, setup.chain.deployer, other_wallet.address, 10),
        ),
        "transaction_failed": (400, _reverted(setup.chain, setup.usdc, address)),
        "unsupported_token": (400, setup.chain.transfer_token(xyz, setup.chain.deployer, address, 10**18)),
        "transaction_not_found": (404, "0x" + "cd" * 32),
    }
    for code, (status, tx_hash) in cases.items():
        response = _report(user, setup.chain_id, tx_hash)
        assert response.status_code == status, (code, response.json())
        error = response.json()["error"]
        assert error["code"] == code and error["message"]
    assert not Deposit.objects.filter(user=user).exists()
