"""The operators' back office: read-only ledger pages and the adjustment action on users."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from ledger.models import LedgerTransaction
from ledger.selectors import user_balances
from marqetfi.core.models import AuditEntry
from tests.ledger.factories import fund, new_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser(email="boss@marqetfi.local", password="ops-Password-1")


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


def adjust(client, users, **form):
    return client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "adjust_balance", "_selected_action": [str(u.pk) for u in users], **form},
    )


def test_accounts_are_listed_searchable_by_email_and_read_only(operator_client, user):
    fund(user, "12.5")
    changelist = reverse("admin:ledger_ledgeraccount_changelist")
    page = operator_client.get(changelist, {"q": user.email}).content.decode()
    assert user.email in page and "12.500000" in page
    assert "0 ledger accounts" in operator_client.get(changelist, {"q": "nobody@x"}).content.decode()
    account = user.ledger_accounts.get(kind="available")
    change = operator_client.get(reverse("admin:ledger_ledgeraccount_change", args=[account.pk]))
    assert change.status_code == 200 and 'name="balance"' not in change.content.decode()
    assert operator_client.get(reverse("admin:ledger_ledgeraccount_add")).status_code == 403


def test_a_transaction_page_shows_its_entries(operator_client, user):
    fund(user, "7")
    posted = LedgerTransaction.objects.get()
    page = operator_client.get(reverse("admin:ledger_ledgertransaction_change", args=[posted.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "7.000000" in html and "-7.000000" in html


def test_the_adjustment_action_asks_for_an_amount_and_a_reason_first(operator_client, user):
    page = adjust(operator_client, [user])
    assert page.status_code == 200
    assert 'name="amount"' in page.content.decode() and 'name="reason"' in page.content.decode()
    assert not LedgerTransaction.objects.exists()


def test_the_adjustment_action_credits_each_selected_user_audited(operator_client, operator, user):
    other = new_user()
    response = adjust(operator_client, [user, other], apply="yes", amount="25.5", reason="Promo credit")
    assert response.status_code == 302
    assert user_balances(user=user).available == Decimal("25.5")
    assert user_balances(user=other).available == Decimal("25.5")
    audits = AuditEntry.objects.filter(action="ledger.adjustment", actor=operator)
    assert {a.target_id for a in audits} == {str(user.pk), str(other.pk)}


def test_the_adjustment_action_refuses_an_overdraft_and_says_so(operator_client, user):
    fund(user, "1")
    response = adjust(operator_client, [user], apply="yes", amount="-2", reason="Reversal")
    assert response.status_code == 302
    assert user_balances(user=user).available == Decimal("1")
    followed = operator_client.get(response["Location"]).content.decode()
    assert "balance is too low" in followed


def test_the_adjustment_action_needs_the_ledger_permission(client, django_user_model, user):
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user(email="clerk@marqetfi.local", password="x", is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_user"), Permission.objects.get(codename="change_user")
    )
    client.force_login(clerk)
    page = client.get(reverse("admin:accounts_user_changelist")).content.decode()
    assert "adjust_balance" not in page
    adjust(client, [user], apply="yes", amount="1000", reason="Me")
    assert not LedgerTransaction.objects.exists()
