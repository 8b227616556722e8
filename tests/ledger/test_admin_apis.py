"""POST /api/v1/admin/users/{id}/adjustments: staff credit or debit a user's USDC, audited."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from conftest import bearer_client
from ledger.models import LedgerEntry, LedgerTransaction
from ledger.selectors import user_balances
from marqetfi.core.models import AuditEntry
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def url(user) -> str:
    return f"/api/v1/admin/users/{user.pk}/adjustments"


def test_a_credit_answers_201_with_the_transaction_and_the_balance_after(ops, staff, user):
    response = ops.post(url(user), {"amount": "100.50", "reason": "Goodwill for outage"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    posted = LedgerTransaction.objects.get()
    assert body == {
        "id": str(posted.pk),
        "kind": "adjustment",
        "user_id": str(user.pk),
        "amount": "100.500000",
        "reason": "Goodwill for outage",
        "actor": staff.email,
        "created_at": body["created_at"],
        "balances": {"available": "100.500000", "margin": "0.000000"},
    }
    audit = AuditEntry.objects.get(action="ledger.adjustment")
    assert audit.actor == staff and audit.target_type == "user" and audit.target_id == str(user.pk)
    assert audit.changes["amount"] == "100.500000" and audit.changes["transaction_id"] == str(posted.pk)
    assert audit.changes["available"] == {"before": "0.000000", "after": "100.500000"}


def test_a_debit_lowers_the_available_balance(ops, user):
    ops.post(url(user), {"amount": "100", "reason": "credit"}, format="json")
    response = ops.post(url(user), {"amount": "-40.25", "reason": "chargeback"}, format="json")
    assert response.status_code == 201
    assert response.json()["balances"]["available"] == "59.750000"
    assert response.json()["amount"] == "-40.250000"


def test_a_debit_beyond_the_balance_is_refused_and_changes_nothing(ops, user):
    ops.post(url(user), {"amount": "10", "reason": "credit"}, format="json")
    response = ops.post(url(user), {"amount": "-10.000001", "reason": "too much"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "insufficient_balance"
    assert response.json()["error"]["details"] == {
        "required": "10.000001",
        "available": "10.000000",
        "account": "available",
    }
    assert user_balances(user=user).available == Decimal("10")
    assert LedgerTransaction.objects.count() == 1
    assert AuditEntry.objects.filter(action="ledger.adjustment").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "0", "reason": "nothing"}, "amount"),
        ({"amount": "1.0000001", "reason": "too precise"}, "amount"),
        ({"amount": "abc", "reason": "not a number"}, "amount"),
        ({"reason": "no amount"}, "amount"),
        ({"amount": "5"}, "reason"),
        ({"amount": "5", "reason": "   "}, "reason"),
    ],
)
def test_invalid_input_is_refused_in_the_error_shape_and_nothing_is_written(ops, user, body, field):
    response = ops.post(url(user), body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]
    assert not LedgerTransaction.objects.exists() and not LedgerEntry.objects.exists()
    assert not AuditEntry.objects.exists()


def test_an_unknown_user_is_404(ops):
    response = ops.post(
        f"/api/v1/admin/users/{uuid.uuid4()}/adjustments", {"amount": "1", "reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_traders_and_anonymous_callers_are_refused(api_client, user):
    victim = UserFactory()
    anonymous = api_client.post(url(victim), {"amount": "1000", "reason": "free money"}, format="json")
    assert anonymous.status_code == 401
    trader = bearer_client(user).post(url(victim), {"amount": "1000", "reason": "free money"}, format="json")
    assert trader.status_code == 403
    assert trader.json()["error"]["code"] == "permission_denied"
    assert not LedgerTransaction.objects.exists() and not AuditEntry.objects.exists()


def test_the_endpoint_is_in_the_api_schema(ops):
    schema = ops.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/admin/users/{user_id}/adjustments"]["post"]
    assert operation["operationId"] == "admin_users_adjustments_create"
