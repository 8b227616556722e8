"""The staff deposits API: every user's deposits, the history with who did what, and retry and
resolve, which credit the user's ledger at most once. Traders get 403."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from conftest import bearer_client
from deposits.models import DepositStatus
from ledger.checks import ledger_check
from ledger.models import LedgerTransaction
from marqetfi.core.models import AuditEntry
from tests.accounts.factories import UserFactory
from tests.deposits.factories import DepositFactory, DepositTransitionFactory, SwapFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        email="ops@marqetfi.local", password="ops-Pass-1", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff(operator: Any) -> APIClient:
    return bearer_client(operator)


def test_traders_get_403_on_every_staff_deposit_path(user):
    deposit = DepositFactory(user=user)
    client = bearer_client(user)
    calls = [
        client.get("/api/v1/admin/deposits"),
        client.get(f"/api/v1/admin/deposits/{deposit.pk}"),
        client.post(f"/api/v1/admin/deposits/{deposit.pk}/retry", {"reason": "x"}, format="json"),
        client.post(f"/api/v1/admin/deposits/{deposit.pk}/resolve", {"reason": "x"}, format="json"),
    ]
    for response in calls:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert DepositFactory._meta.model.objects.get(pk=deposit.pk).status == DepositStatus.FAILED


def test_the_staff_list_has_every_users_deposits_with_filters(staff):
    alice, bob = UserFactory(), UserFactory()
    failed = DepositFactory(user=alice)
    done = DepositFactory(user=bob, status=DepositStatus.COMPLETED, credited_amount="25", chain_id=1)

    everything = staff.get("/api/v1/admin/deposits").json()["results"]
    assert [d["id"] for d in everything] == [str(done.pk), str(failed.pk)]
    assert (everything[1]["user_id"], everything[1]["user_email"]) == (str(alice.pk), alice.email)
    assert {"next_action_at", "wallet_id", "swaps"} <= set(everything[0])
    only = [
        staff.get("/api/v1/admin/deposits", params).json()["results"]
        for params in ({"status": "failed"}, {"chain_id": 1}, {"user": str(alice.pk)})
    ]
    assert [[d["id"] for d in results] for results in only] == [
        [str(failed.pk)],
        [str(done.pk)],
        [str(failed.pk)],
    ]
    bad = staff.get("/api/v1/admin/deposits", {"user": "alice"})
    assert bad.status_code == 400 and "user" in bad.json()["error"]["details"]


def test_the_staff_detail_shows_who_did_each_step(staff, operator):
    deposit = DepositFactory()
    SwapFactory(deposit=deposit, attempt=1)
    DepositTransitionFactory(deposit=deposit)
    DepositTransitionFactory(
        deposit=deposit, from_status="bridging", to_status="failed", reason="closed", actor=operator
    )
    body = staff.get(f"/api/v1/admin/deposits/{deposit.pk}").json()
    assert [(t["to"], t["actor_email"]) for t in body["transitions"]] == [
        ("detected", None),
        ("failed", operator.email),
    ]
    assert body["transitions"][1]["actor_id"] == str(operator.pk)
    missing = staff.get("/api/v1/admin/deposits/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "deposit_not_found"


def test_retry_sends_a_failed_deposit_back_to_quoting_with_the_operator_recorded(staff, operator):
    deposit = DepositFactory(swap_attempts=3)
    response = staff.post(
        f"/api/v1/admin/deposits/{deposit.pk}/retry", {"reason": "LI-FI back"}, format="json"
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["swap_attempts"], body["failure_code"]) == ("quoting", 0, None)
    last = body["transitions"][-1]
    assert (last["from"], last["to"], last["actor_email"]) == ("failed", "quoting", operator.email)
    assert "LI-FI back" in last["reason"]
    assert AuditEntry.objects.filter(
        action="deposit.retry", actor=operator, target_id=str(deposit.pk)
    ).exists()


def test_retry_of_a_deposit_under_way_is_a_409(staff):
    deposit = DepositFactory(status=DepositStatus.BRIDGING)
    response = staff.post(f"/api/v1/admin/deposits/{deposit.pk}/retry", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "deposit_not_retryable"


def test_resolve_with_a_credit_credits_the_user_exactly_once(staff, operator):
    owner = UserFactory()
    deposit = DepositFactory(user=owner)
    path = f"/api/v1/admin/deposits/{deposit.pk}/resolve"
    body = {"reason": "recovered from the bridge by hand", "credit_amount": "24.5"}

    first = staff.post(path, body, format="json")
    second = staff.post(path, body, format="json")

    assert first.status_code == 200, first.json()
    resolved = first.json()
    assert (resolved["status"], resolved["credited_amount"], resolved["amount_usdc"]) == (
        "completed",
        "24.5",
        "24.5",
    )
    assert resolved["transitions"][-1]["actor_email"] == operator.email
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "deposit_already_final"
    account = bearer_client(owner).get("/api/v1/account").json()
    assert account["available"] == "24.5"
    assert LedgerTransaction.objects.filter(kind="deposit", reference=f"deposit:{deposit.pk}").count() == 1
    assert ledger_check() == []


def test_resolve_without_a_credit_closes_the_deposit_as_failed(staff, user):
    deposit = DepositFactory(user=user, status=DepositStatus.REFUNDED)
    response = staff.post(
        f"/api/v1/admin/deposits/{deposit.pk}/resolve", {"reason": "refund returned to sender"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["credited_amount"]) == ("failed", None)
    assert bearer_client(user).get("/api/v1/account").json()["available"] == "0"
    assert ledger_check() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "x", "credit_amount": "0"}, "credit_amount"),
        ({"reason": "x", "credit_amount": "1.0000001"}, "credit_amount"),
        ({"reason": "x", "credit_amount": 1.5}, "credit_amount"),
    ],
)
def test_a_bad_resolution_is_a_400_and_changes_nothing(staff, body, field):
    deposit = DepositFactory()
    response = staff.post(f"/api/v1/admin/deposits/{deposit.pk}/resolve", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.FAILED and deposit.credited_amount is None
