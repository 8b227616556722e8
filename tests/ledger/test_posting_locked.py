"""Postings over accounts the caller locked already, and the posting's writes in one statement
on PostgreSQL: the same rows, balances and ``check_ledger`` as the lock-then-write path, fewer
statements, and a refusal still writes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import requires_postgres
from ledger import services
from ledger.checks import ledger_check
from ledger.errors import InsufficientBalance, InvalidPosting
from ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from ledger.services import (
    ledger_accounts_for_user,
    ledger_accounts_lock_for_update,
    ledger_transaction_post,
    platform_account,
    trading_accounts_lock,
)
from tests.ledger.factories import fund

pytestmark = pytest.mark.django_db


def balance_of(account: LedgerAccount) -> Decimal:
    return LedgerAccount.objects.get(pk=account.pk).balance


def entries_of(posted: LedgerTransaction) -> list[tuple[object, Decimal]]:
    return sorted((str(e.account_id), e.amount) for e in LedgerEntry.objects.filter(transaction=posted))


def ledger_state() -> dict[str, object]:
    """Everything a posting writes, without the ids and times each run draws afresh."""
    return {
        "balances": sorted((a.kind, a.user_id is not None, a.balance) for a in LedgerAccount.objects.all()),
        "transactions": sorted(
            (t.kind, t.reference, t.memo, tuple(sorted(e.amount for e in t.entries.all())))
            for t in LedgerTransaction.objects.prefetch_related("entries")
        ),
        "problems": ledger_check(),
    }


def order_postings(user: object, *, pre_locked: bool) -> tuple[LedgerTransaction, LedgerTransaction]:
    """The order path's two postings in one transaction: the collateral lock, then the fee out
    of the margin, on the accounts ``trading_accounts_lock`` holds (passed on or not)."""
    with transaction.atomic():
        held = trading_accounts_lock(user=user)  # type: ignore[arg-type]
        locked = held.by_pk() if pre_locked else None
        lock = ledger_transaction_post(
            kind="order_collateral_lock",
            legs=[(held.available, Decimal("-10.010000")), (held.margin, Decimal("10.01"))],
            reference="order:1",
            memo="market buy BTC",
            locked=locked,
        )
        fee = ledger_transaction_post(
            kind="fee",
            legs=[(held.margin, Decimal("-0.01")), (held.fees, Decimal("0.01"))],
            reference="order:1",
            memo="opening fee BTC",
            locked=locked,
        )
        # The objects held are the ones the postings moved: the fee saw the lock's margin.
        assert (held.available.balance, held.margin.balance) == (Decimal("89.99"), Decimal("10"))
        assert held.fees.balance == Decimal("0.01")
    return lock, fee


@pytest.mark.parametrize("pre_locked", [True, False], ids=["pre-locked", "locked-by-the-posting"])
def test_the_order_postings_give_the_same_books_with_or_without_the_callers_locks(user, pre_locked):
    fund(user, "100")
    lock, fee = order_postings(user, pre_locked=pre_locked)

    accounts = ledger_accounts_for_user(user=user)
    fees = platform_account(kind=LedgerAccount.Kind.FEES, shard_of=user.pk)
    assert balance_of(accounts.available) == Decimal("89.99")
    assert balance_of(accounts.margin) == Decimal("10")
    assert balance_of(fees) == Decimal("0.01")
    assert entries_of(lock) == sorted(
        [(str(accounts.available.pk), Decimal("-10.01")), (str(accounts.margin.pk), Decimal("10.01"))]
    )
    assert entries_of(fee) == sorted(
        [(str(accounts.margin.pk), Decimal("-0.01")), (str(fees.pk), Decimal("0.01"))]
    )
    assert ledger_check() == []


def test_every_path_writes_identical_books(django_user_model, monkeypatch):
    """The ORM's three writes after the posting's lock (the only path on SQLite), the one
    statement after the lock, and the one statement on the caller's locks."""
    runs = [("orm", False), ("one statement", False), ("one statement", True)]
    states = []
    for number, (writer, pre_locked) in enumerate(runs):
        with monkeypatch.context() as patched:
            if writer == "orm":
                patched.setattr(
                    services,
                    "_posting_write_in_one_statement",
                    lambda connection, **writes: services._posting_write(**writes),
                )
            user = django_user_model.objects.create_user(email=f"t{number}@example.com", password="x")
            fund(user, "100")
            order_postings(user, pre_locked=pre_locked)
        states.append(ledger_state())
        LedgerEntry.objects.all().delete()
        LedgerTransaction.objects.all().delete()
        LedgerAccount.objects.all().delete()
    assert states[0]["problems"] == []
    assert states[1] == states[0]
    assert states[2] == states[0]


def test_the_posted_transaction_is_a_saved_row_as_read_back(user, staff):
    available = fund(user, "5")
    margin = ledger_accounts_for_user(user=user).margin
    with transaction.atomic():
        locked = ledger_accounts_lock_for_update(account_ids=[available.pk, margin.pk])
        posted = ledger_transaction_post(
            kind="order_collateral_lock",
            legs=[(available, Decimal("-2.5")), (margin, Decimal("2.5"))],
            reference="order:7",
            memo="limit buy ETH",
            actor=staff,
            locked=locked,
        )
    assert posted.pk is not None and not posted._state.adding and posted._state.db == "default"
    stored = LedgerTransaction.objects.get(pk=posted.pk)
    assert (stored.kind, stored.reference, stored.memo, stored.actor_id, stored.created_at) == (
        posted.kind,
        posted.reference,
        posted.memo,
        staff.pk,
        posted.created_at,
    )
    assert sorted(e.amount for e in posted.entries.all()) == [Decimal("-2.5"), Decimal("2.5")]
    # The locked objects carry the stored balances and times; the legs' objects the balances.
    for account in (available, margin):
        row = LedgerAccount.objects.get(pk=account.pk)
        assert (locked[account.pk].balance, locked[account.pk].updated_at) == (row.balance, row.updated_at)
        assert account.balance == row.balance


def test_accounts_not_in_the_callers_locks_are_locked_by_the_posting(user):
    available = fund(user, "20")
    clearing = platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING)
    with transaction.atomic():
        held = trading_accounts_lock(user=user)
        ledger_transaction_post(
            kind="deposit",
            legs=[(clearing, Decimal("-3")), (held.available, Decimal("3"))],
            locked=held.by_pk(),
        )
    assert held.available.balance == Decimal("23")
    assert clearing.balance == Decimal("-23")  # the leg object follows the account it locked
    assert balance_of(available) == Decimal("23") and balance_of(clearing) == Decimal("-23")
    assert ledger_check() == []


def test_legs_that_net_to_nothing_write_the_transaction_and_move_no_balance(user):
    available = fund(user, "4")
    with transaction.atomic():
        held = trading_accounts_lock(user=user)
        posted = ledger_transaction_post(
            kind="position_settle",
            legs=[(held.available, Decimal("-4")), (held.available, Decimal("4"))],
            locked=held.by_pk(),
        )
    assert sorted(e.amount for e in posted.entries.all()) == [Decimal("-4"), Decimal("4")]
    assert balance_of(available) == Decimal("4") and held.available.balance == Decimal("4")
    assert ledger_check() == []


def test_a_refusal_on_pre_locked_accounts_writes_nothing_and_leaves_the_objects(user):
    available = fund(user, "10")
    with transaction.atomic():
        held = trading_accounts_lock(user=user)
        with pytest.raises(InsufficientBalance) as refused:
            ledger_transaction_post(
                kind="order_collateral_lock",
                legs=[(held.available, Decimal("-10.000001")), (held.margin, Decimal("10.000001"))],
                locked=held.by_pk(),
            )
        assert refused.value.details["available"] == "10.000000"
        assert held.available.balance == Decimal("10") and held.margin.balance == 0
        # The transaction goes on: a posting that fits still goes through on the same objects.
        ledger_transaction_post(
            kind="order_collateral_lock",
            legs=[(held.available, Decimal("-10")), (held.margin, Decimal("10"))],
            locked=held.by_pk(),
        )
    assert LedgerTransaction.objects.count() == 2  # the funding and the posting that fitted
    assert balance_of(available) == 0 and held.margin.balance == Decimal("10")
    assert ledger_check() == []


@pytest.mark.django_db(transaction=True)
def test_accounts_locked_beforehand_need_the_callers_transaction(user):
    available = fund(user, "1")
    margin = ledger_accounts_for_user(user=user).margin
    with transaction.atomic():
        locked = ledger_accounts_lock_for_update(account_ids=[available.pk, margin.pk])
    # Their locks ended with that transaction: refused, nothing written.
    with pytest.raises(InvalidPosting):
        ledger_transaction_post(
            kind="order_collateral_lock",
            legs=[(available, Decimal("-1")), (margin, Decimal("1"))],
            locked=locked,
        )
    assert LedgerTransaction.objects.count() == 1
    assert balance_of(available) == Decimal("1") and balance_of(margin) == 0


# --- statements (PostgreSQL) -------------------------------------------------------------


@requires_postgres
def test_a_posting_on_pre_locked_accounts_is_one_statement(user):
    fund(user, "100")
    with transaction.atomic():
        held = trading_accounts_lock(user=user)
        with CaptureQueriesContext(connection) as pre_locked:
            ledger_transaction_post(
                kind="order_collateral_lock",
                legs=[(held.available, Decimal("-10")), (held.margin, Decimal("10"))],
                locked=held.by_pk(),
            )
        with CaptureQueriesContext(connection) as locking:
            ledger_transaction_post(
                kind="fee", legs=[(held.margin, Decimal("-1")), (held.fees, Decimal("1"))]
            )
    statements = [query["sql"] for query in pre_locked.captured_queries]
    assert len(statements) == 1, statements
    assert statements[0].startswith("WITH t AS (INSERT INTO")
    # Without the caller's locks: the lock, then the same one statement.
    assert len(locking.captured_queries) == 2, locking.captured_queries
    assert "FOR NO KEY UPDATE" in locking.captured_queries[0]["sql"]
    assert balance_of(held.available) == Decimal("90") and balance_of(held.margin) == Decimal("9")
    assert balance_of(held.fees) == Decimal("1")
    assert ledger_check() == []


@requires_postgres
def test_a_refusal_on_pre_locked_accounts_sends_no_statement(user):
    fund(user, "1")
    with transaction.atomic():
        held = trading_accounts_lock(user=user)
        with CaptureQueriesContext(connection) as refused, pytest.raises(InsufficientBalance):
            ledger_transaction_post(
                kind="order_collateral_lock",
                legs=[(held.available, Decimal("-2")), (held.margin, Decimal("2"))],
                locked=held.by_pk(),
            )
    assert refused.captured_queries == []
    assert LedgerTransaction.objects.count() == 1
