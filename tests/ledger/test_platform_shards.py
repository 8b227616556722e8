"""The platform's fees and realized-P&L accounts are sharded by user: two traders' fees do not
queue on one row, the kind's balance is the sum of its shards, and the books stay exact."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import OperationalError, close_old_connections, connection, transaction
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
    trading_accounts_lock,
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


def users_on_the_same_shard() -> tuple[User, User]:
    first = new_user()
    while True:
        second = new_user()
        if platform_shard_name(kind=FEES, shard_of=second.pk) == platform_shard_name(
            kind=FEES, shard_of=first.pk
        ):
            return first, second


def trading_fee_post(user: User, amount: str) -> LedgerAccount:
    """The order path's fee: out of the margin into the shard ``trading_accounts_lock`` took."""
    held = trading_accounts_lock(user=user)
    ledger_transaction_post(
        kind="fee",
        legs=[(held.available, -Decimal(amount)), (held.fees, Decimal(amount))],
        locked=held.by_pk(),
    )
    return held.fees


@pytest.mark.django_db
def test_the_order_path_takes_the_users_own_shard_when_it_is_free_and_makes_every_shard():
    user = new_user()
    balance_adjust(user=user, amount=Decimal(100), reason="funding", actor=None)
    with transaction.atomic():
        shard = trading_fee_post(user, "1")
    assert shard.name == platform_shard_name(kind=FEES, shard_of=user.pk)
    assert LedgerAccount.objects.filter(user__isnull=True, kind=FEES).count() == 16
    with transaction.atomic():
        assert trading_fee_post(user, "2") == shard
    assert platform_balances()["fees"] == Decimal(3)
    assert ledger_check() == []


@pytest.mark.django_db
def test_with_one_shard_the_order_path_posts_to_the_one_fees_account():
    user = new_user()
    balance_adjust(user=user, amount=Decimal(100), reason="funding", actor=None)
    with override_settings(LEDGER_PLATFORM_SHARDS=1), transaction.atomic():
        assert trading_fee_post(user, "1") == platform_account(kind=FEES)
    assert LedgerAccount.objects.filter(user__isnull=True, kind=FEES).count() == 1
    assert ledger_check() == []


def hold_in_another_transaction(
    work: Callable[[], object],
    holding: threading.Event,
    release: threading.Event,
    errors: list[BaseException],
) -> threading.Thread:
    def run() -> None:
        try:
            with transaction.atomic():
                work()
                holding.set()
                release.wait(10)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            holding.set()
        finally:
            close_old_connections()
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_traders_whose_shards_collide_do_not_queue_on_it():
    """Alice's fill holds her shard; Bob's shard is the same one, so his fill takes another free
    shard at once instead of waiting for hers to commit, and the books stay exact."""
    alice, bob = users_on_the_same_shard()
    for user in (alice, bob):
        balance_adjust(user=user, amount=Decimal(100), reason="funding", actor=None)
    with transaction.atomic():
        trading_fee_post(alice, "1")  # every shard exists before the race
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    taken: list[LedgerAccount] = []
    holder = hold_in_another_transaction(
        lambda: taken.append(trading_fee_post(alice, "2")), holding, release, errors
    )
    assert holding.wait(10)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            bobs = trading_fee_post(bob, "3")  # a lock timeout if it queued behind alice
    finally:
        release.set()
        holder.join(10)
    assert errors == []
    assert taken[0].name == platform_shard_name(kind=FEES, shard_of=alice.pk)
    assert bobs.pk != taken[0].pk
    assert platform_balances()["fees"] == Decimal(6)
    assert ledger_check() == []


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_when_every_shard_is_held_the_order_path_waits_for_the_users_own():
    """No free shard: the fill waits for its own shard (here until the lock timeout), it does not
    post anywhere else or fail in another way."""
    user = new_user()
    balance_adjust(user=user, amount=Decimal(100), reason="funding", actor=None)
    with override_settings(LEDGER_PLATFORM_SHARDS=2):
        with transaction.atomic():
            trading_fee_post(user, "1")
        assert LedgerAccount.objects.filter(user__isnull=True, kind=FEES).count() == 2
        holding, release = threading.Event(), threading.Event()
        errors: list[BaseException] = []

        def hold_every_shard() -> None:
            list(LedgerAccount.objects.select_for_update().filter(user__isnull=True, kind=FEES))

        holder = hold_in_another_transaction(hold_every_shard, holding, release, errors)
        assert holding.wait(10)
        try:
            with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '300ms'")
                trading_fee_post(user, "2")
        finally:
            release.set()
            holder.join(10)
        assert errors == []
        with transaction.atomic():
            assert trading_fee_post(user, "2").name == platform_shard_name(kind=FEES, shard_of=user.pk)
    assert platform_balances()["fees"] == Decimal(3)
    assert ledger_check() == []
