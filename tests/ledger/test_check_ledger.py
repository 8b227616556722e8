"""``manage.py check_ledger``: OK on sound books, each problem and a failing exit otherwise."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger.checks import ledger_check
from ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from ledger.services import balance_adjust, ledger_accounts_for_user, ledger_transaction_post
from tests.ledger.factories import fund

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_ledger(user, staff):
    available = fund(user, "1000.000001")
    margin = ledger_accounts_for_user(user=user).margin
    ledger_transaction_post(
        kind="order_collateral_lock", legs=[(available, Decimal("-0.1")), (margin, Decimal("0.1"))]
    )
    balance_adjust(user=user, amount=Decimal("-0.2"), reason="fee refund reversed", actor=staff)
    return available


def test_a_healthy_ledger_passes(busy_ledger, capsys):
    assert ledger_check() == []
    call_command("check_ledger")
    assert capsys.readouterr().out.strip() == "OK"


def test_an_empty_ledger_passes():
    assert ledger_check() == []


def test_a_tampered_balance_is_reported_and_the_command_fails(busy_ledger, capsys):
    LedgerAccount.objects.filter(pk=busy_ledger.pk).update(balance=Decimal("5000"))
    problems = ledger_check()
    assert any(str(busy_ledger.pk) in p and "entries sum to 999.700001" in p for p in problems), problems
    assert any("sum to 4000.299999, not zero" in p for p in problems), problems
    with pytest.raises(CommandError) as failed:
        call_command("check_ledger")
    assert failed.value.returncode == 1
    out = capsys.readouterr().out
    assert "5000.000000" in out and "OK" not in out


def test_an_unbalanced_transaction_is_reported(busy_ledger):
    entry = LedgerEntry.objects.filter(account=busy_ledger).earliest("transaction__created_at")
    LedgerEntry.objects.filter(pk=entry.pk).update(amount=entry.amount + Decimal("0.000001"))
    problems = ledger_check()
    assert any(f"transaction {entry.transaction_id}" in p and "sums to 0.000001" in p for p in problems), (
        problems
    )


def test_a_transaction_with_a_single_entry_is_reported(busy_ledger):
    lonely = LedgerTransaction.objects.create(kind="fee")
    assert any(f"transaction {lonely.pk} (fee) has 0 entries" in p for p in ledger_check())


def test_a_user_below_zero_is_reported(user):
    available = fund(user, "1")
    LedgerEntry.objects.filter(account=available).update(amount=Decimal("-1"))
    LedgerEntry.objects.exclude(account=available).update(amount=Decimal("1"))
    LedgerAccount.objects.filter(pk=available.pk).update(balance=Decimal("0"))
    problems = ledger_check()
    assert any("is below zero" in p and str(available.pk) in p for p in problems), problems


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_from_the_command_line(user):
    from django.core.management import ManagementUtility

    available = fund(user, "3")
    LedgerAccount.objects.filter(pk=available.pk).update(balance=Decimal("2"))
    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "check_ledger"]).execute()
    assert exited.value.code == 1
