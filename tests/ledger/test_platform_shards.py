"""The platform's fees and realized-P&L accounts are sharded by user: two traders' fees do not
queue on one row, the kind's balance is the sum of its shards, and the books stay exact."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection, transaction
from django.test import override_settings

from accounts.models import User
from conftest import requires_postgres
from ledger.checks import ledger_check
from ledger.models import LedgerAccount
from ledger.selectors import platform_balances
from ledger.services import (
    balance_adjust,
    ledger_accounts_for_user,
    ledger_transaction_post,
    platform_account,
    platform_shard_name,
)
from tests.ledger.factories import new_user

FEES = LedgerAccount.Kind.FEES


def fee_post(user: User, amount: str) -> None:
    accounts = ledger_accounts_for_user(user=user)
    ledger_transaction_post(
        kind="fee",
        legs=[
            (accounts.available, -Decimal(amount)),
            (platform_account(kind=FEES, shard_of=user.pk), Decimal(amount)),
        ],
    )


def users_on_different_shards() -> tuple[User, User]:
    first = new_user()
    while True:
        second = new_user()
        if platform_shard_name(kind=FEES, shard_of=second.pk) != platform_shard_name(
            kind=FEES, shard_of=first.pk
        ):
            return first, second


@pytest.mark.django_db
def test_a_users_fees_always_go_to_the_same_shard_and_the_kind_sums_its_shards():
    alice, bob = users_on_different_shards()
    for user in (alice, bob):
        balance_adjust(user=user, amount=Decimal(100), reason="funding", actor=None)
    fee_post(alice, "1.5")
    fee_post(alice, "0.5")
    fee_post(bob, "3")

    assert platform_account(kind=FEES, shard_of=alice.pk) == platform_account(kind=FEES, shard_of=alice.pk)
    assert platform_account(kind=FEES, shard_of=alice.pk).balance == Decimal(2)
    assert platform_account(kind=FEES, shard_of=bob.pk).balance == Decimal(3)
    assert LedgerAccount.objects.filter(user__isnull=True, kind=FEES).count() == 2
    assert platform_balances()["fees"] == Decimal(5)
    assert ledger_check() == []


@pytest.mark.django_db
def test_one_shard_is_the_one_fees_account_of_before():
    user = new_user()
    with override_settings(LEDGER_PLATFORM_SHARDS=1):
        assert platform_account(kind=FEES, shard_of=user.pk) == platform_account(kind=FEES)
    assert platform_account(kind=FEES, shard_of=None).name == ""


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_fee_posting_is_not_blocked_by_another_traders_open_fee_posting():
    """One transaction posts a fee and stays open; another trader's fee posting commits meanwhile
    (with one ``fees`` row it would wait for the first to end)."""
    alice, bob = users_on_different_shards()
    for user in (alice, bob):
        balance_adjust(user=user, amount=Decimal(100), reason="funding", actor=None)
    fee_post(alice, "1")  # both shards and accounts exist before the race
    fee_post(bob, "1")
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold_open() -> None:
        try:
            with transaction.atomic():
                fee_post(alice, "2")
                holding.set()
                release.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    holder = threading.Thread(target=hold_open)
    holder.start()
    assert holding.wait(10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        started = time.monotonic()
        fee_post(bob, "3")  # would raise a lock timeout if it queued behind alice's posting
        waited = time.monotonic() - started
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    finally:
        release.set()
        holder.join(10)
    assert errors == []
    assert waited < 2
    assert platform_balances()["fees"] == Decimal(7)
    assert ledger_check() == []
