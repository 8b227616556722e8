"""``marqetfi.core.rows``: the order path's fixed-shape reads and writes give what the ORM gives.

Checked on the trading rows they serve (UUIDs, Decimals, JSON, timestamps, foreign keys,
nulls), on whichever database the suite runs on; the row lock is checked on PostgreSQL by a
second connection that cannot take it.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from conftest import requires_postgres
from ledger.models import LedgerAccount
from marqetfi.core.rows import Lock, RowSelect, row_update
from tests.trading.fixtures_triggers import place
from trading.models import Order, Position

pytestmark = pytest.mark.django_db(transaction=True)

orders_of = RowSelect(Order, '"user_id" = %s AND "status" = %s', ("user", "status"), order_by='"created_at"')
position_locked = RowSelect(Position, '"id" = %s', ("id",), lock=Lock.NO_KEY_UPDATE)


def _fields(instance: Any) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_rows_read_as_the_orm_reads_them(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2), stop_loss=Decimal(60000))
    place(funded_trader, collateral=Decimal(7), leverage=Decimal(3))

    fast = orders_of.fetch(funded_trader.pk, Order.Status.FILLED)
    orm = list(Order.objects.filter(user=funded_trader, status=Order.Status.FILLED).order_by("created_at"))

    assert len(fast) == 2
    for mine, theirs in zip(fast, orm, strict=True):
        assert _fields(mine) == _fields(theirs)
        assert {k: type(v) for k, v in _fields(mine).items()} == {
            k: type(v) for k, v in _fields(theirs).items()
        }
        assert mine._state.adding is False and mine._state.db == "default"
    assert isinstance(fast[0].routing, dict) and fast[0].routing
    assert orders_of.fetch(funded_trader.pk, Order.Status.CANCELLED) == []
    assert orders_of.first(funded_trader.pk, Order.Status.CANCELLED) is None


def test_a_fetched_row_saves_and_refreshes_as_an_orm_row(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))
    position = Position.objects.get(user=funded_trader)
    with transaction.atomic():
        fetched = position_locked.first(position.pk)
        assert fetched is not None
        fetched.fees_paid = Decimal("1.25")
        fetched.save(update_fields=["fees_paid"])
    fetched.refresh_from_db()
    assert fetched.fees_paid == Decimal("1.25")


def test_row_update_writes_the_fields_and_stamps_updated_at(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))
    position = Position.objects.get(user=funded_trader)
    before = position.updated_at
    position.entry_price = Decimal("64123.45")
    position.resource_version += 1

    row_update(position, ["entry_price", "resource_version", "updated_at"])

    stored = Position.objects.get(pk=position.pk)
    assert stored.entry_price == Decimal("64123.45")
    assert stored.resource_version == position.resource_version
    assert stored.updated_at == position.updated_at > before


def test_row_update_of_a_missing_row_raises(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))
    position = Position.objects.get(user=funded_trader)
    Position.objects.filter(pk=position.pk).update(status=Position.Status.CLOSED)
    ghost = Position.objects.get(pk=position.pk)
    ghost.pk = uuid.uuid4()
    with pytest.raises(DatabaseError):
        row_update(ghost, ["status"])


def test_parameter_markers_and_fields_must_match() -> None:
    with pytest.raises(ValueError):
        RowSelect(LedgerAccount, '"user_id" = %s', ("user", "kind"))
    select = RowSelect(LedgerAccount, '"user_id" = %s', ("user",))
    with pytest.raises(TypeError):
        select.fetch()


def test_the_lock_is_in_the_statement_where_the_database_has_it(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))
    position = Position.objects.get(user=funded_trader)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        position_locked.first(position.pk)
    (select,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    if connection.features.has_select_for_no_key_update:
        assert select.endswith("FOR NO KEY UPDATE")
    else:
        assert "FOR " not in select


@requires_postgres
def test_a_locked_row_cannot_be_taken_by_another_transaction(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))
    position = Position.objects.get(user=funded_trader)
    outcome: list[str] = []

    def other_transaction() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT id FROM trading_position WHERE id = %s FOR UPDATE NOWAIT", [position.pk]
                )
            outcome.append("taken")
        except DatabaseError:
            outcome.append("refused")
        finally:
            connections.close_all()

    with transaction.atomic():
        assert position_locked.first(position.pk) is not None
        other = threading.Thread(target=other_transaction)
        other.start()
        other.join(10)
    assert outcome == ["refused"]
