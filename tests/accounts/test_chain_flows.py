"""Wallet balances and contract-wallet sign-in against a real local EVM over JSON-RPC."""

from __future__ import annotations

import pytest

from accounts.models import Wallet
from conftest import bearer_client
from tests.accounts.conftest import EthWallet, siwe_nonce
from tests.chain.config import chains_configured

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain_settings(local_chain):
    usdc = local_chain.deploy_token("USDC", 6, 10**15)
    usdt = local_chain.deploy_token("USDT", 6, 10**15)
    chains = {
        str(local_chain.chain_id): {
            "name": "Local test chain",
            "rpc_url": local_chain.rpc_url,
            "tokens": {"USDC": {"address": usdc, "decimals": 6}, "USDT": {"address": usdt, "decimals": 6}},
        },
        "999999": {"name": "Down chain", "rpc_url": "http://127.0.0.1:9", "tokens": {}},
    }
    with chains_configured(chains, SIWE_CHAIN_IDS=[local_chain.chain_id, 42161]):
        yield {"usdc": usdc, "usdt": usdt}


def test_balances_show_native_and_token_amounts_per_chain(user, local_chain, chain_settings):
    client = bearer_client(user)
    wallet = client.post("/api/v1/wallets/mpc", {}, format="json").json()
    local_chain.send_eth(local_chain.deployer, wallet["address"], 15 * 10**17)
    local_chain.transfer_token(chain_settings["usdc"], local_chain.deployer, wallet["address"], 1_234_567)
    response = client.get(f"/api/v1/wallets/{wallet['id']}/balances")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["address"] == wallet["address"]
    by_chain = {c["chain_id"]: c for c in body["chains"]}
    local = by_chain[local_chain.chain_id]
    assert local["error"] is None
    assert [(b["symbol"], b["amount"]) for b in local["balances"]] == [
        ("ETH", "1.5"),
        ("USDC", "1.234567"),
        ("USDT", "0"),
    ]
    assert local["balances"][1]["token_address"] == chain_settings["usdc"]
    down = by_chain[999999]
    assert down["error"] == "chain_unavailable"
    assert down["balances"] == []


def test_a_contract_wallet_signs_in_through_eip_1271(api_client, local_chain, chain_settings):
    owner = EthWallet()
    contract_address = local_chain.deploy_contract_wallet(owner.address)
    message = owner.siwe_message(siwe_nonce(api_client), chain_id=local_chain.chain_id)
    message = message.replace(owner.address, contract_address)
    response = api_client.post(
        "/api/v1/auth/siwe/verify", {"message": message, "signature": owner.sign(message)}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Wallet.objects.get().address == contract_address


def test_a_contract_wallet_refuses_a_signature_by_someone_else(api_client, local_chain, chain_settings):
    contract_address = local_chain.deploy_contract_wallet(EthWallet().address)
    stranger = EthWallet()
    message = stranger.siwe_message(siwe_nonce(api_client), chain_id=local_chain.chain_id)
    message = message.replace(stranger.address, contract_address)
    response = api_client.post(
        "/api/v1/auth/siwe/verify", {"message": message, "signature": stranger.sign(message)}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "siwe_invalid_signature"
    assert not Wallet.objects.exists()
