"""The deposits REST API of a user: the history with its filters, one deposit with its swaps and
history, reporting a transaction (what is refused before any chain is read; reports against a
real chain are in test_report_api.py), and the deposit address. No user ever reaches another
user's deposits."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import Wallet
from conftest import bearer_client
from deposits.models import DepositStatus, SwapStatus
from providers.models import LocalWalletKey
from tests.accounts.factories import UserFactory
from tests.chain.config import chains_configured
from tests.deposits.factories import (
    TEST_CHAIN_ID,
    USDT,
    DepositFactory,
    DepositTransitionFactory,
    SwapFactory,
)

pytestmark = pytest.mark.django_db

DEPOSIT_FIELDS = {
    "id",
    "status",
    "source",
    "chain_id",
    "chain_name",
    "tx_hash",
    "log_index",
    "block_number",
    "from_address",
    "to_address",
    "token",
    "amount",
    "amount_raw",
    "amount_usdc",
    "credited_amount",
    "confirmations",
    "confirmations_required",
    "swap",
    "swaps",
    "swap_attempts",
    "failure_code",
    "failure_reason",
    "resource_version",
    "created_at",
    "updated_at",
    "completed_at",
}
GOOD_HASH = "0x" + "ab" * 32
TEST_CHAINS = {
    str(TEST_CHAIN_ID): {
        "name": "Test chain",
        "rpc_url": "http://127.0.0.1:9",
        "confirmations": 3,
        "tokens": {"USDT": {"address": USDT, "decimals": 6}},
    },
    "10": {"name": "No deposits here", "rpc_url": "http://127.0.0.1:9", "deposits": False, "tokens": {}},
}


@pytest.fixture
def owner() -> Any:
    return UserFactory()


@pytest.fixture
def client(owner: Any) -> APIClient:
    return bearer_client(owner)


# --- list -------------------------------------------------------------------------------


def test_the_list_has_only_the_callers_deposits_newest_first(client, owner):
    older = DepositFactory(user=owner, status=DepositStatus.COMPLETED, credited_amount="25")
    newer = DepositFactory(user=owner, status=DepositStatus.CONFIRMING, confirmations=1)
    DepositFactory()  # someone else's

    response = client.get("/api/v1/deposits")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"results", "next"} and body["next"] is None
    assert [d["id"] for d in body["results"]] == [str(newer.pk), str(older.pk)]
    first = body["results"][0]
    assert set(first) == DEPOSIT_FIELDS
    assert (first["amount"], first["amount_raw"], first["status"]) == ("25", "25000000", "confirming")
    assert first["token"] == {"symbol": "USDT", "address": USDT, "decimals": 6, "native": False}
    assert body["results"][1]["credited_amount"] == "25"


def test_the_list_is_cursor_paginated(client, owner):
    for _ in range(3):
        DepositFactory(user=owner)
    first = client.get("/api/v1/deposits", {"limit": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    seen = {d["id"] for d in first["results"] + second["results"]}
    assert len(seen) == 3


def test_listing_costs_the_same_queries_for_two_deposits_or_eight(client, owner):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/deposits").status_code == 200
        return len(captured)

    for _ in range(2):
        SwapFactory(deposit=DepositFactory(user=owner), attempt=1)
    queries()  # the first request fills this process's settings caches
    few = queries()
    for _ in range(6):
        deposit = DepositFactory(user=owner)
        SwapFactory(deposit=deposit, attempt=1)
        SwapFactory(deposit=deposit, attempt=2)
    assert queries() == few


def test_the_list_filters_by_status_and_chain(client, owner):
    failed = DepositFactory(user=owner, status=DepositStatus.FAILED)
    DepositFactory(user=owner, status=DepositStatus.COMPLETED, credited_amount="25")
    other_chain = DepositFactory(user=owner, status=DepositStatus.FAILED, chain_id=1)

    by_status = client.get("/api/v1/deposits", {"status": "failed"}).json()["results"]
    assert {d["id"] for d in by_status} == {str(failed.pk), str(other_chain.pk)}
    both = client.get("/api/v1/deposits", {"status": "failed", "chain_id": 1}).json()["results"]
    assert [d["id"] for d in both] == [str(other_chain.pk)]
    assert client.get("/api/v1/deposits", {"chain_id": 5}).json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"status": "lost"}, "status"), ({"chain_id": "arbitrum"}, "chain_id"), ({"chain_id": "0"}, "chain_id")],
)
def test_a_bad_filter_is_a_400_naming_the_field(client, params, field):
    response = client.get("/api/v1/deposits", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]


def test_the_list_needs_a_signed_in_user(api_client):
    response = api_client.get("/api/v1/deposits")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


# --- one --------------------------------------------------------------------------------


def test_one_deposit_shows_every_swap_and_its_history_without_operators(client, owner, django_user_model):
    operator = django_user_model.objects.create_superuser(email="ops@marqetfi.local", password="ops-Pass-1")
    deposit = DepositFactory(user=owner, status=DepositStatus.QUOTING, swap_attempts=1)
    SwapFactory(deposit=deposit, attempt=1, status=SwapStatus.FAILED)
    SwapFactory(deposit=deposit, attempt=2, status=SwapStatus.QUOTED, tx_hash="", finished_at=None)
    DepositTransitionFactory(deposit=deposit, reason="found by scan")
    DepositTransitionFactory(
        deposit=deposit,
        from_status=DepositStatus.FAILED,
        to_status=DepositStatus.QUOTING,
        reason="retried by an operator",
        actor=operator,
    )

    response = client.get(f"/api/v1/deposits/{deposit.pk}")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == DEPOSIT_FIELDS | {"transitions"}
    assert [s["attempt"] for s in body["swaps"]] == [1, 2]
    assert (body["swap"]["attempt"], body["swap"]["status"]) == (2, "quoted")
    assert body["amount_usdc"] == "24.9"  # the latest quote, until credited
    assert [(t["from"], t["to"]) for t in body["transitions"]] == [(None, "detected"), ("failed", "quoting")]
    assert all(set(t) == {"from", "to", "reason", "at"} for t in body["transitions"])
    assert operator.email not in response.content.decode()


def test_another_users_deposit_is_not_found(client):
    theirs = DepositFactory()
    response = client.get(f"/api/v1/deposits/{theirs.pk}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["details"]) == ("deposit_not_found", {"deposit_id": str(theirs.pk)})


def test_a_path_that_is_no_id_is_not_found(client):
    response = client.get("/api/v1/deposits/not-a-uuid")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- report -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"chain_id": TEST_CHAIN_ID, "tx_hash": "0x1234"}, "tx_hash"),
        ({"chain_id": TEST_CHAIN_ID, "tx_hash": "ab" * 33}, "tx_hash"),
        ({"chain_id": TEST_CHAIN_ID, "tx_hash": "0x" + "zz" * 32}, "tx_hash"),
        ({"chain_id": TEST_CHAIN_ID}, "tx_hash"),
        ({"tx_hash": GOOD_HASH}, "chain_id"),
        ({"chain_id": "arbitrum", "tx_hash": GOOD_HASH}, "chain_id"),
        ({"chain_id": -1, "tx_hash": GOOD_HASH}, "chain_id"),
    ],
)
def test_a_malformed_report_is_a_400_per_field(client, body, field):
    response = client.post("/api/v1/deposits", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]


def test_a_report_on_a_chain_without_deposits_is_unsupported_chain(client):
    with chains_configured(TEST_CHAINS):
        unknown = client.post("/api/v1/deposits", {"chain_id": 56, "tx_hash": GOOD_HASH}, format="json")
        disabled = client.post("/api/v1/deposits", {"chain_id": 10, "tx_hash": GOOD_HASH}, format="json")
    for response, chain_id in ((unknown, 56), (disabled, 10)):
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "unsupported_chain",
            "message": "Deposits are not accepted on this chain.",
            "details": {"chain_id": chain_id},
        }


def test_a_report_while_the_chains_rpc_is_down_is_a_503_to_retry(client):
    with chains_configured(TEST_CHAINS):
        response = client.post(
            "/api/v1/deposits", {"chain_id": TEST_CHAIN_ID, "tx_hash": GOOD_HASH}, format="json"
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "chain_unavailable"


# --- address ----------------------------------------------------------------------------


def test_the_address_creates_a_local_mpc_wallet_once_and_lists_the_deposit_chains(client, owner):
    with chains_configured(TEST_CHAINS):
        first = client.get("/api/v1/deposits/address")
        again = client.get("/api/v1/deposits/address")

    assert first.status_code == 200, first.json()
    body = first.json()
    wallet = Wallet.objects.get(user=owner)
    assert (wallet.kind, wallet.provider) == ("mpc", "local")
    assert body == {
        "address": wallet.address,
        "wallet_id": str(wallet.pk),
        "provider": "local",
        "chains": [
            {
                "chain_id": TEST_CHAIN_ID,
                "name": "Test chain",
                "confirmations": 3,
                "tokens": [{"symbol": "USDT", "address": USDT, "decimals": 6}],
                "native": {"symbol": "ETH", "decimals": 18},
            }
        ],
    }
    assert again.json() == body
    assert LocalWalletKey.objects.count() == 1


@pytest.mark.parametrize(
    ("provider", "status", "code"),
    [("coinbase", 400, "unknown_wallet_provider"), ("privy", 503, "wallet_provider_unavailable")],
)
def test_a_wallet_provider_error_on_the_address_is_its_own_answer_not_a_500(client, provider, status, code):
    with override_settings(MPC_WALLET_DEFAULT_PROVIDER=provider):
        response = client.get("/api/v1/deposits/address")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not Wallet.objects.exists()
