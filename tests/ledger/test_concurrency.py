"""Concurrent postings on PostgreSQL: row locks in a stable order, no overdraft, no deadlock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from conftest import requires_postgres
from ledger.checks import ledger_check
from ledger.errors import InsufficientBalance
from ledger.models import LedgerAccount
from ledger.selectors import user_balances
from ledger.services import (
    balance_adjust,
    ledger_accounts_for_user,
    ledger_transaction_post,
    platform_account,
)
from tests.ledger.factories import new_user

pytestmark = [requires_postgres, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; each result or the exception raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - the caller inspects what each thread raised
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_ten_debits_of_200_from_1000_leave_exactly_five_through():
    user = new_user()
    balance_adjust(user=user, amount=Decimal("1000"), reason="funding", actor=None)

    results = run_together(
        10, lambda i: balance_adjust(user=user, amount=Decimal("-200"), reason=f"debit {i}", actor=None)
    )

    refused = [r for r in results if isinstance(r, InsufficientBalance)]
    posted = [r for r in results if not isinstance(r, Exception)]
    assert len(posted) == 5 and len(refused) == 5, results
    assert user_balances(user=user).available == 0
    assert ledger_check() == []


def test_first_postings_racing_create_one_set_of_accounts():
    user = new_user()
    results = run_together(
        8, lambda i: balance_adjust(user=user, amount=Decimal("1"), reason=f"credit {i}", actor=None)
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert LedgerAccount.objects.filter(user=user).count() == 2
    assert LedgerAccount.objects.filter(kind="adjustments").count() == 1
    assert user_balances(user=user).available == Decimal("8")
    assert ledger_check() == []


def test_transfers_in_opposite_directions_never_deadlock():
    alice, bob = new_user(), new_user()
    balance_adjust(user=alice, amount=Decimal("100"), reason="funding", actor=None)
    balance_adjust(user=bob, amount=Decimal("100"), reason="funding", actor=None)
    a, b = ledger_accounts_for_user(user=alice).available, ledger_accounts_for_user(user=bob).available
    fees = platform_account(kind="fees")

    def transfer(i: int) -> None:
        source, target = (a, b) if i % 2 else (b, a)
        ledger_transaction_post(
            kind="transfer",
            legs=[(source, Decimal("-1")), (fees, Decimal("0.5")), (target, Decimal("0.5"))],
        )

    results = run_together(20, transfer)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert user_balances(user=alice).available + user_balances(user=bob).available == Decimal("190")
    assert ledger_check() == []
