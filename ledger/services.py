"""Every write to the ledger: accounts on demand, balanced postings under row locks, adjustments.

``ledger_transaction_post`` is the one place balances change. It may run inside a caller's
transaction (trading posts from its own atomic blocks): it refuses before writing anything,
and a caller that has locked the accounts already (``trading_accounts_lock``) passes them on
so that they are not locked again. On PostgreSQL a posting's writes are one statement.

Platform accounts that every trade posts to (``fees``, ``realized_pnl``) are sharded: the
kind is ``settings.LEDGER_PLATFORM_SHARDS`` rows, named ``""`` (shard 0, the account from
before sharding) and ``shard-1`` ... ``shard-N-1``, and a posting goes to the shard of its
user (``platform_account(kind=..., shard_of=user_id)``). Why shards rather than entries
without a stored balance: every posting still moves stored balances under row locks, so
``check_ledger`` keeps proving each stored balance against its entries exactly, and reading
a balance stays one indexed read (the sum of N rows) instead of a sum over every entry
ever posted. Why by user: a user's postings already queue on that user's own rows, so two
traders' fees only meet on a shard when their hashes collide (1 in N), instead of always
meeting on the one ``fees`` row, which serialised every fill of the platform. The order path
(``trading_accounts_lock``) goes further: when the user's own ``fees`` shard is held by
another transaction it takes any free one (``SKIP LOCKED``), so colliding hashes do not queue
either. The balance of a kind is the sum of its shards everywhere it is read
(``platform_balances``, the dashboard, analytics).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, Value, When
from django.utils import timezone

from accounts.models import User
from ledger.errors import (
    AdjustmentRejected,
    InsufficientBalance,
    InvalidAmount,
    InvalidPosting,
    UnbalancedTransaction,
)
from ledger.models import (
    AMOUNT_DIGITS,
    AMOUNT_PLACES,
    AMOUNT_QUANTUM,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    TransactionKind,
)
from marqetfi.core.audit import audit_record
from marqetfi.core.rows import Lock, RowSelect

Leg = tuple[LedgerAccount, Decimal]

_AMOUNT_LIMIT = Decimal(10) ** (AMOUNT_DIGITS - AMOUNT_PLACES)
_PLATFORM_KINDS = frozenset(LedgerAccount.Kind.values) - set(LedgerAccount.USER_KINDS)
SHARDED_KINDS = frozenset({LedgerAccount.Kind.FEES, LedgerAccount.Kind.REALIZED_PNL})
SHARD_NAME_PREFIX = "shard-"
_KIND_MAX_LENGTH = LedgerTransaction._meta.get_field("kind").max_length or 64
_REFERENCE_MAX_LENGTH = LedgerTransaction._meta.get_field("reference").max_length or 200


@dataclass(frozen=True)
class UserAccounts:
    available: LedgerAccount
    margin: LedgerAccount


def _account_get_or_create(*, user: User | None, kind: str, name: str = "") -> LedgerAccount:
    # get_or_create reads again after an IntegrityError, so two first postings racing on
    # PostgreSQL both end up with the one row the conditional unique constraint allows.
    with transaction.atomic():
        account, _ = LedgerAccount.objects.get_or_create(user=user, kind=kind, name=name)
    return account


def ledger_accounts_for_user(*, user: User) -> UserAccounts:
    """The user's ``available`` and ``margin`` accounts, created on first use (one read once
    they exist)."""
    found = {account.kind: account for account in LedgerAccount.objects.filter(user=user)}
    for kind in LedgerAccount.USER_KINDS:
        if kind not in found:
            found[kind] = _account_get_or_create(user=user, kind=kind)
    return UserAccounts(
        available=found[LedgerAccount.Kind.AVAILABLE], margin=found[LedgerAccount.Kind.MARGIN]
    )


def platform_shard_name(*, kind: str, shard_of: object) -> str:
    """The name of the shard of ``kind`` that postings for ``shard_of`` (a user id) go to: the
    same shard for the same key in every process (a CRC, not Python's salted ``hash``)."""
    shards = max(1, int(settings.LEDGER_PLATFORM_SHARDS))
    if kind not in SHARDED_KINDS or shards == 1:
        return ""
    shard = zlib.crc32(str(shard_of).encode()) % shards
    return f"{SHARD_NAME_PREFIX}{shard}" if shard else ""


def platform_account(*, kind: str, name: str = "", shard_of: object = None) -> LedgerAccount:
    """One of the platform's accounts, created on first use; venue accounts are named by venue key.

    ``shard_of`` (a user id): for a sharded kind (``SHARDED_KINDS``), the shard that key's
    postings go to; without it, shard 0 (the one account of the kind before sharding)."""
    if kind not in _PLATFORM_KINDS:
        raise InvalidPosting(f"{kind!r} is not a kind of platform account.", details={"kind": kind})
    if shard_of is not None and not name:
        name = platform_shard_name(kind=kind, shard_of=shard_of)
    elif (kind == LedgerAccount.Kind.VENUE) != bool(name):
        raise InvalidPosting(
            "A venue account is named by its venue key; other platform accounts have no name.",
            details={"kind": kind, "name": name},
        )
    account = LedgerAccount.objects.filter(user=None, kind=kind, name=name).first()
    return account if account is not None else _account_get_or_create(user=None, kind=kind, name=name)


def platform_shards_make(*, kind: str) -> None:
    """Make every shard of a sharded kind that does not exist yet (one statement when they all
    do), so that a posting free to take any shard has them all to choose from."""
    shards = max(1, int(settings.LEDGER_PLATFORM_SHARDS))
    names = ["", *(f"{SHARD_NAME_PREFIX}{shard}" for shard in range(1, shards))]
    made = LedgerAccount.objects.filter(user=None, kind=kind, name__in=names)
    existing = set(made.values_list("name", flat=True))
    for name in names:
        if name not in existing:
            _account_get_or_create(user=None, kind=kind, name=name)


def ledger_accounts_lock_for_update(*, account_ids: Iterable[UUID]) -> dict[UUID, LedgerAccount]:
    """Lock the accounts' rows until the transaction ends and return them as they are now.

    The rows are locked in primary-key order, the one order every posting uses, so two
    postings over the same accounts queue up instead of deadlocking.
    """
    accounts = (
        LedgerAccount.objects.select_for_update(no_key=True).filter(pk__in=set(account_ids)).order_by("pk")
    )
    return {account.pk: account for account in accounts}


@dataclass(frozen=True)
class TradingAccounts:
    """A trader's accounts and the fees shard their fills post to, locked together."""

    available: LedgerAccount
    margin: LedgerAccount
    fees: LedgerAccount

    def by_pk(self) -> dict[UUID, LedgerAccount]:
        """The locked accounts by pk, as ``ledger_transaction_post(locked=...)`` takes them."""
        return {account.pk: account for account in (self.available, self.margin, self.fees)}


# The user's two accounts (waited for, in pk order), then one ``fees`` shard taken with
# ``SKIP LOCKED``: the user's own shard when it is free, else any free one. Which shard a fee
# goes to changes nothing a balance shows (a kind's balance is the sum of its shards), and
# skipping a held shard means two traders' fills never queue on one while another is free.
# A shard taken this way is never waited for, so it cannot close a cycle of waits.
_trading_accounts_locked = RowSelect(
    LedgerAccount,
    '"user_id" = %s AND "kind" IN (%s, %s)',
    ("user", "kind", "kind"),
    order_by='"id"',
    lock=Lock.NO_KEY_UPDATE,
    then=RowSelect(
        LedgerAccount,
        '"user_id" IS NULL AND "kind" = %s',
        ("kind", "name"),
        order_by='CASE WHEN "name" = %s THEN 0 ELSE 1 END, "id"',
        lock=Lock.NO_KEY_UPDATE,
        skip_locked=True,
        limit=1,
    ),
)


def trading_accounts_lock(*, user: User) -> TradingAccounts:
    """Lock the user's ``available`` and ``margin`` accounts and a ``fees`` shard until the
    transaction ends, in one statement, and return them as they are now.

    The user's accounts are locked in the ledger's one lock order (by pk). The shard is the
    user's own (``platform_shard_name``) when no other transaction holds it, else any free
    shard (``SKIP LOCKED``); only when every shard is held, or the accounts are not made yet,
    are they made (every shard of the kind at once) and the user's own shard waited for.
    Postings in the same transaction take them as ``locked=accounts.by_pk()`` and do not lock
    them again."""
    fees_name = platform_shard_name(kind=LedgerAccount.Kind.FEES, shard_of=user.pk)
    rows = _trading_accounts_locked.fetch(
        user.pk, *LedgerAccount.USER_KINDS, LedgerAccount.Kind.FEES, fees_name
    )
    found = {account.kind: account for account in rows}
    if len(found) < len(LedgerAccount.USER_KINDS) + 1:
        accounts = ledger_accounts_for_user(user=user)
        platform_shards_make(kind=LedgerAccount.Kind.FEES)
        fees = platform_account(kind=LedgerAccount.Kind.FEES, shard_of=user.pk)
        locked = ledger_accounts_lock_for_update(
            account_ids=[accounts.available.pk, accounts.margin.pk, fees.pk]
        )
        found = {account.kind: account for account in locked.values()}
    return TradingAccounts(
        available=found[LedgerAccount.Kind.AVAILABLE],
        margin=found[LedgerAccount.Kind.MARGIN],
        fees=found[LedgerAccount.Kind.FEES],
    )


def amount_check(amount: object) -> Decimal:
    """``amount`` if it is a finite, non-zero Decimal of at most 6 decimal places within the column.

    Nothing is rounded: an amount with more precision is refused, never silently changed.
    """
    if not isinstance(amount, Decimal):
        raise InvalidAmount(
            f"Amounts are Decimal, not {type(amount).__name__}.", details={"amount": repr(amount)}
        )
    if not amount.is_finite():
        raise InvalidAmount("Amounts must be finite.", details={"amount": str(amount)})
    if amount == 0:
        raise InvalidAmount("Amounts must not be zero.", details={"amount": str(amount)})
    if abs(amount) >= _AMOUNT_LIMIT:
        raise InvalidAmount("The amount is too large.", details={"amount": str(amount)})
    if amount.quantize(AMOUNT_QUANTUM) != amount:
        raise InvalidAmount(
            f"Amounts have at most {AMOUNT_PLACES} decimal places.", details={"amount": str(amount)}
        )
    return amount


def _posting_check(*, kind: str, legs: Sequence[Leg], reference: str) -> None:
    if not kind or len(kind) > _KIND_MAX_LENGTH:
        raise InvalidPosting(f"A transaction kind is 1 to {_KIND_MAX_LENGTH} characters.")
    if len(reference) > _REFERENCE_MAX_LENGTH:
        raise InvalidPosting(f"A reference is at most {_REFERENCE_MAX_LENGTH} characters.")
    if len(legs) < 2:
        raise UnbalancedTransaction(details={"legs": len(legs)})
    currencies = set()
    for account, amount in legs:
        if not isinstance(account, LedgerAccount) or account.pk is None or account._state.adding:
            raise InvalidPosting("Every leg needs a saved ledger account.")
        amount_check(amount)
        currencies.add(account.currency)
    if len(currencies) > 1:
        raise InvalidPosting(
            "All legs of a transaction are in one currency.", details={"currencies": sorted(currencies)}
        )
    total = sum((amount for _, amount in legs), Decimal(0))
    if total != 0:
        raise UnbalancedTransaction(details={"total": f"{total:f}"})


def ledger_transaction_post(
    *,
    kind: str,
    legs: Sequence[Leg],
    reference: str = "",
    memo: str = "",
    actor: User | None = None,
    locked: Mapping[UUID, LedgerAccount] | None = None,
) -> LedgerTransaction:
    """Write one balanced transaction and move the balances of its accounts.

    Refuses (before writing anything) legs that are not Decimal, carry more than 6 decimal
    places, are zero, or do not sum to exactly zero (``InvalidAmount``,
    ``UnbalancedTransaction``), and a posting that would take a user's account below zero
    (``InsufficientBalance``). The accounts of ``legs`` get their new balances.

    ``locked``: accounts the caller's transaction has locked already, by pk, as they are now
    (``ledger_accounts_lock_for_update``, ``TradingAccounts.by_pk()``). The legs' accounts
    found there are not locked again: their balances there are the ones checked and moved,
    and those very objects get the new balances, so a second posting in the transaction sees
    the first. Any other account of the legs is locked by the posting (after the caller's:
    the caller keeps to the ledger's lock order). Refused outside a transaction, where no
    lock is held.

    In a caller's transaction it opens no savepoint: a refusal comes before any write (the
    only statement before it is the lock, if any, which a refusal leaves harmless), and a
    failed statement marks the caller's transaction for rollback, as Django does for any.
    On PostgreSQL the transaction, its entries and the balances are written in one statement
    (a data-modifying CTE), so a posting on accounts all locked by the caller costs that one
    statement, and two otherwise (the lock, the write). Elsewhere (SQLite) the ORM's three
    writes: the transaction, its entries, the balances (one UPDATE for all the accounts).
    """
    if not transaction.get_connection().in_atomic_block:
        if locked:
            raise InvalidPosting(
                "Accounts locked beforehand are only locked inside the caller's transaction."
            )
        with transaction.atomic():
            return _transaction_post(kind=kind, legs=legs, reference=reference, memo=memo, actor=actor)
    return _transaction_post(kind=kind, legs=legs, reference=reference, memo=memo, actor=actor, locked=locked)


def _transaction_post(
    *,
    kind: str,
    legs: Sequence[Leg],
    reference: str,
    memo: str,
    actor: User | None,
    locked: Mapping[UUID, LedgerAccount] | None = None,
) -> LedgerTransaction:
    _posting_check(kind=kind, legs=legs, reference=reference)
    accounts: dict[UUID, LedgerAccount] = {}
    missing: set[UUID] = set()
    for account, _ in legs:
        if locked is not None and account.pk in locked:
            accounts[account.pk] = locked[account.pk]
        else:
            missing.add(account.pk)
    if missing:
        with transaction.atomic(savepoint=False):  # a failed statement dooms the caller's transaction
            accounts.update(ledger_accounts_lock_for_update(account_ids=missing))
    changes: dict[UUID, Decimal] = defaultdict(Decimal)
    for account, amount in legs:
        if account.pk not in accounts:
            raise InvalidPosting(
                "A leg's ledger account does not exist.", details={"account": str(account.pk)}
            )
        changes[account.pk] += amount
    for account_id, change in changes.items():
        account = accounts[account_id]
        if account.is_user_account and change < 0 and account.balance + change < 0:
            raise InsufficientBalance(
                required=(-change).quantize(AMOUNT_QUANTUM), available=account.balance, account=account.kind
            )

    posted = LedgerTransaction(
        kind=kind, reference=reference, memo=memo, actor=actor if actor is not None and actor.pk else None
    )
    entries = [
        LedgerEntry(transaction=posted, account=accounts[account.pk], amount=amount)
        for account, amount in legs
    ]
    moved = {account_id: change for account_id, change in changes.items() if change}
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        _posting_write_in_one_statement(
            connection, posted=posted, entries=entries, moved=moved, accounts=accounts
        )
    else:
        _posting_write(posted=posted, entries=entries, moved=moved, accounts=accounts)
    for account, _ in legs:
        account.balance = accounts[account.pk].balance
    return posted


def _posting_write(
    *,
    posted: LedgerTransaction,
    entries: list[LedgerEntry],
    moved: dict[UUID, Decimal],
    accounts: dict[UUID, LedgerAccount],
) -> None:
    """The posting's three writes through the ORM (SQLite)."""
    with transaction.atomic(savepoint=False):
        posted.save(force_insert=True)
        LedgerEntry.objects.bulk_create(entries)
        if moved:
            # The rows are locked: each new balance is the locked one plus its change, set
            # exactly (not ``balance + change`` in SQL) so the rows and the objects agree.
            now = timezone.now()
            for account_id, change in moved.items():
                accounts[account_id].balance += change
                accounts[account_id].updated_at = now
            balance_field = LedgerAccount._meta.get_field("balance")
            LedgerAccount.objects.filter(pk__in=list(moved)).update(
                balance=Case(
                    *(When(pk=pk, then=Value(accounts[pk].balance)) for pk in moved),
                    output_field=balance_field,
                ),
                updated_at=now,
            )


_ENTRY_FIELDS = tuple(field for field in LedgerEntry._meta.concrete_fields if field.name != "transaction")


@cache
def _posting_statement(alias: str) -> str:
    """The posting in one PostgreSQL statement: the transaction row inserted, its entries
    inserted from one array per column (joined to the new row's id), and the moved balances
    updated in place, returning each account's new balance. Every value is a parameter."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    tx, entry, account = LedgerTransaction._meta, LedgerEntry._meta, LedgerAccount._meta
    tx_columns = ", ".join(qn(field.column) for field in tx.concrete_fields)
    tx_values = ", ".join("%s" for _ in tx.concrete_fields)
    entry_columns = ", ".join(qn(field.column) for field in (entry.get_field("transaction"), *_ENTRY_FIELDS))
    entry_arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in _ENTRY_FIELDS)
    entry_aliases = ", ".join(f"c{i}" for i in range(len(_ENTRY_FIELDS)))
    balance = qn(account.get_field("balance").column)
    updated_at = qn(account.get_field("updated_at").column)
    account_pk = qn(account.pk.column)
    return (
        f"WITH t AS (INSERT INTO {qn(tx.db_table)} ({tx_columns}) VALUES ({tx_values}) "  # noqa: S608
        f"RETURNING {qn(tx.pk.column)} AS id), "
        f"e AS (INSERT INTO {qn(entry.db_table)} ({entry_columns}) "
        f"SELECT t.id, {entry_aliases} FROM t, UNNEST({entry_arrays}) AS v({entry_aliases})) "
        f"UPDATE {qn(account.db_table)} AS a SET {balance} = a.{balance} + m.change, {updated_at} = %s "
        f"FROM UNNEST(%s::{account.pk.db_type(connection)}[], %s::numeric[]) AS m(id, change) "
        f"WHERE a.{account_pk} = m.id RETURNING a.{account_pk}, a.{balance}"
    )


def _posting_write_in_one_statement(
    connection: BaseDatabaseWrapper,
    *,
    posted: LedgerTransaction,
    entries: list[LedgerEntry],
    moved: dict[UUID, Decimal],
    accounts: dict[UUID, LedgerAccount],
) -> None:
    """The posting's writes in one statement (PostgreSQL). The balances move by their changes
    in SQL under the row locks, and the locked objects take the new balances the statement
    returns, so the rows and the objects agree."""
    now = timezone.now()
    params: list[Any] = [
        field.get_db_prep_save(getattr(posted, field.attname), connection)
        for field in LedgerTransaction._meta.concrete_fields
    ]
    params.extend(
        [field.get_db_prep_save(getattr(entry, field.attname), connection) for entry in entries]
        for field in _ENTRY_FIELDS
    )
    params.append(LedgerAccount._meta.get_field("updated_at").get_db_prep_save(now, connection))
    params.append(list(moved))
    params.append(list(moved.values()))
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(_posting_statement(connection.alias), params)
        balances = dict(cursor.fetchall())
        if balances.keys() != moved.keys():  # locked rows cannot vanish; never commit without them
            raise InvalidPosting(
                "A leg's ledger account does not exist.",
                details={"accounts": sorted(str(pk) for pk in moved.keys() - balances.keys())},
            )
    for account_id, new_balance in balances.items():
        accounts[account_id].balance = new_balance
        accounts[account_id].updated_at = now
    posted._state.adding = False
    posted._state.db = connection.alias


@transaction.atomic
def balance_adjust(*, user: User, amount: Decimal, reason: str, actor: User | None) -> LedgerTransaction:
    """An operator's manual credit (positive) or debit (negative) of the user's available USDC.

    The other leg is the platform's ``adjustments`` account; the change is audited in the
    same transaction. A debit beyond the available balance raises ``InsufficientBalance``.
    """
    reason = (reason or "").strip()
    problems: dict[str, list[str]] = {}
    if not reason:
        problems["reason"] = ["A reason is required."]
    try:
        amount_check(amount)
    except InvalidAmount as exc:
        problems["amount"] = [exc.message]
    if problems:
        raise AdjustmentRejected(details=problems)

    accounts = ledger_accounts_for_user(user=user)
    counterparty = platform_account(kind=LedgerAccount.Kind.ADJUSTMENTS)
    posted = ledger_transaction_post(
        kind=TransactionKind.ADJUSTMENT,
        legs=[(accounts.available, amount), (counterparty, -amount)],
        reference=f"user:{user.pk}",
        memo=reason,
        actor=actor,
    )
    after = accounts.available.balance
    amount = amount.quantize(AMOUNT_QUANTUM)
    audit_record(
        actor=actor,
        action="ledger.adjustment",
        target_type="user",
        target_id=user.pk,
        changes={
            "transaction_id": str(posted.pk),
            "amount": f"{amount:f}",
            "reason": reason,
            "available": {"before": f"{after - amount:f}", "after": f"{after:f}"},
        },
    )
    return posted


@transaction.atomic
def deposit_receive_post(*, amount: Decimal, reference: str, memo: str = "") -> LedgerTransaction:
    """USDC of a deposit has arrived on chain: from ``deposits_received`` (the outside world)
    into ``deposits_clearing``, where it waits until the deposit is credited."""
    amount_check(amount)
    if amount < 0:
        raise InvalidAmount("A received amount is positive.", details={"amount": f"{amount:f}"})
    return ledger_transaction_post(
        kind=TransactionKind.DEPOSIT_RECEIVE,
        legs=[
            (platform_account(kind=LedgerAccount.Kind.DEPOSITS_RECEIVED), -amount),
            (platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING), amount),
        ],
        reference=reference,
        memo=memo,
    )


@transaction.atomic
def deposit_credit_post(*, user: User, amount: Decimal, reference: str, memo: str = "") -> LedgerTransaction:
    """A received deposit becomes the user's: from ``deposits_clearing`` to their available USDC."""
    amount_check(amount)
    if amount < 0:
        raise InvalidAmount("A credited amount is positive.", details={"amount": f"{amount:f}"})
    accounts = ledger_accounts_for_user(user=user)
    return ledger_transaction_post(
        kind=TransactionKind.DEPOSIT,
        legs=[
            (platform_account(kind=LedgerAccount.Kind.DEPOSITS_CLEARING), -amount),
            (accounts.available, amount),
        ],
        reference=reference,
        memo=memo,
    )
