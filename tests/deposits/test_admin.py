"""Operators' deposit screens: pages load with their filters and search, rows are read-only, and
the retry and resolve actions go through the audited services, refusing (with a message, never
a 500) deposits that are not failed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from deposits.models import ChainScanCursor, Deposit, DepositStatus
from ledger.checks import ledger_check
from ledger.selectors import user_balances
from marqetfi.core.models import AuditEntry
from tests.deposits.factories import DepositTransitionFactory, SwapFactory, new_deposit

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:deposits_deposit_changelist"


@pytest.fixture
def operator_client(client: Any, django_user_model: Any) -> Any:
    operator = django_user_model.objects.create_superuser(email="ops@marqetfi.local", password="ops-Pass-1")
    client.force_login(operator)
    client.operator = operator
    return client


def act(client: Any, action: str, deposits: list[Deposit], **form: Any) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(d.pk) for d in deposits], **form},
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_every_deposits_page_loads_for_an_operator(operator_client):
    deposit = new_deposit(swap_attempts=1)
    swap = SwapFactory(deposit=deposit, attempt=1)
    DepositTransitionFactory(deposit=deposit)
    cursor = ChainScanCursor.objects.create(chain_id=deposit.chain_id, last_block=120)
    pages = [
        reverse(CHANGELIST),
        reverse(CHANGELIST)
        + "?status__exact=failed&chain_id__exact=421614&source__exact=scan&token_symbol=USDT",
        reverse(CHANGELIST) + f"?q={deposit.tx_hash}",
        reverse(CHANGELIST) + f"?q={deposit.user.email}",
        reverse(CHANGELIST) + f"?q={deposit.to_address}",
        reverse("admin:deposits_deposit_change", args=[deposit.pk]),
        reverse("admin:deposits_swap_changelist") + "?status__exact=failed&provider=lifi",
        reverse("admin:deposits_swap_change", args=[swap.pk]),
        reverse("admin:deposits_chainscancursor_changelist"),
        reverse("admin:deposits_chainscancursor_change", args=[cursor.pk]),
    ]
    for page in pages:
        response = operator_client.get(page)
        assert response.status_code == 200, page
    listed = operator_client.get(reverse(CHANGELIST) + f"?q={deposit.tx_hash}").content.decode()
    assert deposit.user.email in listed and "25 USDT" in listed and "3 / 3" in listed


def test_deposit_rows_cannot_be_added_edited_or_deleted(operator_client):
    deposit = new_deposit()
    change = operator_client.get(reverse("admin:deposits_deposit_change", args=[deposit.pk])).content.decode()
    assert 'name="status"' not in change and 'name="amount_raw"' not in change
    assert operator_client.get(reverse("admin:deposits_deposit_add")).status_code == 403
    assert operator_client.get(reverse("admin:deposits_deposit_delete", args=[deposit.pk])).status_code == 403
    assert operator_client.get(reverse("admin:deposits_swap_add")).status_code == 403


def test_retry_sends_failed_deposits_back_and_refuses_the_others_with_a_message(operator_client):
    failed = new_deposit(swap_attempts=3)
    completed = new_deposit(status=DepositStatus.COMPLETED, credited_amount="25")

    response = act(operator_client, "retry_failed_swap", [failed, completed])

    assert response.status_code == 200
    failed.refresh_from_db()
    completed.refresh_from_db()
    assert (failed.status, failed.swap_attempts) == (DepositStatus.QUOTING, 0)
    assert completed.status == DepositStatus.COMPLETED
    text = messages_of(response)
    assert any("1 deposit(s) sent back" in m for m in text)
    assert any("it is completed" in m for m in text)
    transition = failed.transitions.get(to_status=DepositStatus.QUOTING)
    assert transition.actor == operator_client.operator
    assert AuditEntry.objects.filter(action="deposit.retry", actor=operator_client.operator).count() == 1


def test_resolve_asks_for_a_reason_and_an_amount_first(operator_client):
    deposit = new_deposit()
    page = act(operator_client, "resolve_manually", [deposit])
    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="reason"' in html and 'name="credit_amount"' in html and deposit.tx_hash in html
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.FAILED


def test_resolve_with_a_credit_credits_the_user_once(operator_client):
    deposit = new_deposit()
    form = {"apply": "yes", "reason": "recovered by hand", "credit_amount": "24.5"}

    response = act(operator_client, "resolve_manually", [deposit], **form)

    assert response.status_code == 200
    assert any("credited 24.5" in m for m in messages_of(response))
    deposit.refresh_from_db()
    assert (deposit.status, deposit.credited_amount) == (DepositStatus.COMPLETED, Decimal("24.5"))
    assert user_balances(user=deposit.user).available == Decimal("24.5")
    again = act(operator_client, "resolve_manually", [deposit], **form)
    assert any("it is completed" in m for m in messages_of(again))
    assert user_balances(user=deposit.user).available == Decimal("24.5")
    assert ledger_check() == []


def test_resolve_refuses_deposits_under_way_without_a_form(operator_client):
    deposit = new_deposit(status=DepositStatus.BRIDGING)
    response = act(operator_client, "resolve_manually", [deposit])
    assert response.status_code == 200
    assert 'name="credit_amount"' not in response.content.decode()
    assert any("it is bridging" in m for m in messages_of(response))
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.BRIDGING


def test_a_credit_amount_is_for_one_deposit_at_a_time(operator_client):
    deposits = [new_deposit(), new_deposit()]
    form = {"apply": "yes", "reason": "recovered", "credit_amount": "10"}
    response = act(operator_client, "resolve_manually", deposits, **form)
    assert response.status_code == 200
    assert "select only that deposit" in response.content.decode()
    assert all(Deposit.objects.get(pk=d.pk).status == DepositStatus.FAILED for d in deposits)
    closed = act(operator_client, "resolve_manually", deposits, apply="yes", reason="nothing arrived")
    assert any("2 deposit(s) resolved: closed as failed" in m for m in messages_of(closed))
    assert ledger_check() == []
