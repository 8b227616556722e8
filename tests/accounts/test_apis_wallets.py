"""MPC wallets through the wallet-provider interface, external wallets by signature, isolation."""

from __future__ import annotations

import pytest
from django.db import connection
from eth_utils import is_checksum_address

from accounts.models import Wallet
from conftest import bearer_client
from marqetfi.core import crypto
from marqetfi.core.models import Event
from providers.models import LocalWalletKey
from tests.accounts.conftest import EthWallet, siwe_body
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_local_mpc_wallet_is_created_once_per_user_provider_and_chain(user, leak_guard):
    client = bearer_client(user)
    first = client.post("/api/v1/wallets/mpc", {}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["kind"], body["provider"], body["chain_type"]) == ("mpc", "local", "ethereum")
    assert is_checksum_address(body["address"])
    again = client.post("/api/v1/wallets/mpc", {"provider": "local"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert Wallet.objects.filter(user=user).count() == 1
    assert LocalWalletKey.objects.count() == 1
    assert Event.objects.filter(user=user, type="account.wallet_linked").count() == 1
    key = LocalWalletKey.objects.get()
    leak_guard.add(crypto.decrypt(key.encrypted_private_key), key.encrypted_private_key)


def test_the_local_signer_key_is_ciphertext_in_the_database_and_never_served(user):
    client = bearer_client(user)
    wallet = client.post("/api/v1/wallets/mpc", {}, format="json").json()
    key = LocalWalletKey.objects.get()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT encrypted_private_key FROM {LocalWalletKey._meta.db_table}")
        [(raw,)] = cursor.fetchall()
    private_key = crypto.decrypt(raw)
    assert len(bytes.fromhex(private_key.removeprefix("0x"))) == 32
    assert private_key.removeprefix("0x") not in raw
    from eth_account import Account

    assert Account.from_key(private_key).address == wallet["address"] == key.address
    for path in ("/api/v1/wallets", f"/api/v1/wallets/{wallet['id']}", "/api/v1/me"):
        text = client.get(path).content.decode()
        assert private_key.removeprefix("0x") not in text
        assert raw not in text


def test_an_unknown_provider_is_a_400_and_an_unconfigured_one_a_503(user):
    client = bearer_client(user)
    unknown = client.post("/api/v1/wallets/mpc", {"provider": "coinbase"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_wallet_provider"
    unconfigured = client.post("/api/v1/wallets/mpc", {"provider": "privy"}, format="json")
    assert unconfigured.status_code == 503
    assert unconfigured.json()["error"]["code"] == "wallet_provider_unavailable"
    assert not Wallet.objects.exists()


def test_an_external_wallet_is_linked_by_signature(api_client, user, eth_wallet):
    client = bearer_client(user)
    response = client.post("/api/v1/wallets/external", siwe_body(api_client, eth_wallet), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "external"
    assert response.json()["address"] == eth_wallet.address
    again = client.post("/api/v1/wallets/external", siwe_body(api_client, eth_wallet), format="json")
    assert again.status_code == 200
    assert Event.objects.filter(user=user, type="account.wallet_linked").count() == 1


def test_an_external_wallet_of_another_user_is_refused(api_client, user, eth_wallet):
    bearer_client(UserFactory()).post(
        "/api/v1/wallets/external", siwe_body(api_client, eth_wallet), format="json"
    )
    response = bearer_client(user).post(
        "/api/v1/wallets/external", siwe_body(api_client, eth_wallet), format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "wallet_in_use"
    assert not Wallet.objects.filter(user=user).exists()


def test_a_bad_signature_links_nothing(api_client, user, eth_wallet):
    body = siwe_body(api_client, eth_wallet)
    body["signature"] = EthWallet().sign(body["message"])
    response = bearer_client(user).post("/api/v1/wallets/external", body, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "siwe_invalid_signature"
    assert not Wallet.objects.exists()


def test_several_wallets_per_user_are_listed_oldest_first(api_client, user):
    client = bearer_client(user)
    mpc = client.post("/api/v1/wallets/mpc", {}, format="json").json()
    external = client.post(
        "/api/v1/wallets/external", siwe_body(api_client, EthWallet()), format="json"
    ).json()
    listed = client.get("/api/v1/wallets").json()
    assert [w["id"] for w in listed["results"]] == [mpc["id"], external["id"]]
    assert listed["next"] is None


def test_nobody_sees_or_uses_another_users_wallets(api_client, user):
    owner = UserFactory()
    wallet = bearer_client(owner).post("/api/v1/wallets/mpc", {}, format="json").json()
    client = bearer_client(user)
    assert client.get("/api/v1/wallets").json()["results"] == []
    for path in (f"/api/v1/wallets/{wallet['id']}", f"/api/v1/wallets/{wallet['id']}/balances"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert wallet["address"] not in client.get("/api/v1/me").content.decode()


def test_wallet_endpoints_need_a_token(api_client):
    for path in ("/api/v1/wallets", "/api/v1/wallets/mpc", "/api/v1/wallets/external"):
        response = (
            api_client.post(path, {}, format="json") if path != "/api/v1/wallets" else api_client.get(path)
        )
        assert response.status_code == 401, path
