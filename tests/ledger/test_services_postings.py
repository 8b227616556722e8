"""Postings: balanced transactions move balances; anything else is refused before a write."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from ledger.errors import InsufficientBalance, InvalidAmount, InvalidPosting, UnbalancedTransaction
from ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from ledger.selectors import user_balances
from ledger.services import (
    balance_adjust,
    ledger_accounts_for_user,
    ledger_transaction_post,
    platform_account,
)
from tests.ledger.factories import fund, new_user

pytestmark = pytest.mark.django_db


def nothing_written() -> bool:
    return not LedgerTransaction.objects.exists() and not LedgerEntry.objects.exists()


def balance_of(account: LedgerAccount) -> Decimal:
    return LedgerAccount.objects.get(pk=account.pk).balance


def test_a_balanced_posting_moves_every_account_and_sums_to_zero(user):
    accounts = ledger_accounts_for_user(user=user)
    clearing = platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING)
    ledger_transaction_post(
        kind="deposit",
        legs=[(accounts.available, Decimal("1000")), (clearing, Decimal("-1000"))],
        reference="deposit:1",
    )
    posted = ledger_transaction_post(
        kind="order_collateral_lock",
        legs=[(accounts.available, Decimal("-250.123456")), (accounts.margin, Decimal("250.123456"))],
        reference="order:1",
    )
    assert accounts.available.balance == Decimal("749.876544")  # the caller's copies follow
    assert balance_of(accounts.available) == Decimal("749.876544")
    assert balance_of(accounts.margin) == Decimal("250.123456")
    assert balance_of(clearing) == Decimal("-1000")
    assert sum(a.balance for a in LedgerAccount.objects.all()) == 0
    assert sorted(e.amount for e in posted.entries.all()) == [Decimal("-250.123456"), Decimal("250.123456")]
    assert user_balances(user=user).available == Decimal("749.876544")


def test_user_accounts_are_created_once_on_demand(user):
    assert user_balances(user=user).available == 0
    first = ledger_accounts_for_user(user=user)
    again = ledger_accounts_for_user(user=user)
    assert (first.available.pk, first.margin.pk) == (again.available.pk, again.margin.pk)
    assert LedgerAccount.objects.filter(user=user).count() == 2
    assert platform_account(kind="venue", name="paper") == platform_account(kind="venue", name="paper")
    assert platform_account(kind="venue", name="paper") != platform_account(kind="venue", name="lighter")


@pytest.mark.parametrize(
    ("kind", "name"), [("available", ""), ("venue", ""), ("fees", "paper"), ("treasury", "")]
)
def test_platform_accounts_of_unknown_kinds_or_misnamed_are_refused(kind, name):
    with pytest.raises(InvalidPosting):
        platform_account(kind=kind, name=name)
    assert not LedgerAccount.objects.exists()


@pytest.mark.parametrize(
    ("amounts", "error"),
    [
        ((Decimal("100"), Decimal("-99.999999")), UnbalancedTransaction),
        ((Decimal("100"),), UnbalancedTransaction),
        ((Decimal("0.0000001"), Decimal("-0.0000001")), InvalidAmount),
        ((Decimal("1.1234567"), Decimal("-1.1234567")), InvalidAmount),
        ((100.5, -100.5), InvalidAmount),
        ((100, -100), InvalidAmount),
        ((Decimal("NaN"), Decimal("NaN")), InvalidAmount),
        ((Decimal("Infinity"), Decimal("-Infinity")), InvalidAmount),
        ((Decimal("0"), Decimal("0")), InvalidAmount),
        ((Decimal("1E+18"), Decimal("-1E+18")), InvalidAmount),
    ],
)
def test_unbalanced_imprecise_or_float_legs_are_refused_and_nothing_is_written(user, amounts, error):
    accounts = ledger_accounts_for_user(user=user)
    clearing = platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING)
    legs = list(zip([accounts.available, clearing], amounts, strict=False))
    with pytest.raises(error) as refused:
        ledger_transaction_post(kind="deposit", legs=legs)
    assert refused.value.status_code == 400
    assert nothing_written()
    assert balance_of(accounts.available) == 0 and balance_of(clearing) == 0


def test_trailing_zeros_beyond_six_places_are_not_extra_precision(user):
    accounts = ledger_accounts_for_user(user=user)
    clearing = platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING)
    ledger_transaction_post(
        kind="deposit", legs=[(accounts.available, Decimal("5.10000000")), (clearing, Decimal("-5.1"))]
    )
    assert balance_of(accounts.available) == Decimal("5.1")


def test_an_overdraft_is_refused_with_what_was_needed_and_what_there_is(user):
    available = fund(user, "100")
    margin = ledger_accounts_for_user(user=user).margin
    with pytest.raises(InsufficientBalance) as refused:
        ledger_transaction_post(
            kind="order_collateral_lock",
            legs=[(available, Decimal("-100.000001")), (margin, Decimal("100.000001"))],
        )
    assert refused.value.code == "insufficient_balance"
    assert refused.value.details == {
        "required": "100.000001",
        "available": "100.000000",
        "account": "available",
    }
    assert LedgerTransaction.objects.count() == 1  # the funding only
    assert balance_of(available) == Decimal("100") and balance_of(margin) == 0


def test_platform_accounts_may_go_below_zero_but_user_accounts_never(user):
    available = fund(user, "10")
    assert balance_of(platform_account(kind="deposits_clearing")) == Decimal("-10")
    assert balance_of(available) == Decimal("10")


def test_legs_on_one_account_are_netted_before_the_overdraft_check(user):
    available = fund(user, "10")
    fees = platform_account(kind="fees")
    pnl = platform_account(kind="realized_pnl")
    ledger_transaction_post(
        kind="position_settle",
        legs=[
            (available, Decimal("-15")),
            (available, Decimal("20")),
            (fees, Decimal("15")),
            (pnl, Decimal("-20")),
        ],
    )
    assert balance_of(available) == Decimal("15")


def test_a_refused_posting_inside_a_callers_transaction_leaves_the_callers_work_intact(user):
    available = fund(user, "50")
    margin = ledger_accounts_for_user(user=user).margin
    with transaction.atomic():
        ledger_transaction_post(
            kind="order_collateral_lock", legs=[(available, Decimal("-30")), (margin, Decimal("30"))]
        )
        with pytest.raises(InsufficientBalance):
            ledger_transaction_post(
                kind="order_collateral_lock", legs=[(available, Decimal("-30")), (margin, Decimal("30"))]
            )
    assert balance_of(available) == Decimal("20") and balance_of(margin) == Decimal("30")


def test_an_adjustment_credits_and_debits_against_the_adjustments_account(user, staff):
    balance_adjust(user=user, amount=Decimal("100.5"), reason="goodwill", actor=staff)
    posted = balance_adjust(user=user, amount=Decimal("-0.5"), reason="correction", actor=staff)
    assert posted.kind == "adjustment" and posted.memo == "correction" and posted.actor == staff
    assert user_balances(user=user).available == Decimal("100")
    assert balance_of(platform_account(kind="adjustments")) == Decimal("-100")


def test_an_adjustment_debit_beyond_the_balance_changes_nothing(user, staff):
    from marqetfi.core.models import AuditEntry

    balance_adjust(user=user, amount=Decimal("10"), reason="goodwill", actor=staff)
    with pytest.raises(InsufficientBalance):
        balance_adjust(user=user, amount=Decimal("-10.01"), reason="oops", actor=staff)
    assert user_balances(user=user).available == Decimal("10")
    assert LedgerTransaction.objects.count() == 1
    assert AuditEntry.objects.filter(action="ledger.adjustment").count() == 1


def test_each_user_has_accounts_of_their_own():
    alice, bob = new_user(), new_user()
    fund(alice, "5")
    assert user_balances(user=bob).available == 0
    assert user_balances(user=alice).available == Decimal("5")
