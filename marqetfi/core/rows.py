"""Fixed-shape row reads and writes on the hot path, without the ORM's query compilation.

Building and compiling a queryset costs about 0.4 ms of CPU for a SELECT and 0.15 ms for an
UPDATE in this stack, a good part of an order's CPU when an order runs a dozen of them. The
order path's statements have fixed shapes, so ``RowSelect`` and ``row_update`` build their
SQL once per process (per model, condition, lock and columns) and only convert and bind new
parameters on each call: a SELECT then costs about 0.18 ms.

What they keep of the ORM: every parameter goes through its field's ``get_db_prep_value`` /
``get_db_prep_save`` (so UUIDs, Decimals and JSON are stored exactly as the ORM stores them,
on PostgreSQL and SQLite alike), ``auto_now`` fields are stamped by their ``pre_save``, and
instances are made by ``Model.from_db``, so they behave as if the ORM had read them
(``save()``, ``refresh_from_db()``, deferred nothing). What they leave out: model signals
(``pre_save`` / ``post_save`` are not sent), so they are for models without receivers, and
anything but the plain conditions written in the statement.

Row locks follow ``select_for_update``: ``FOR UPDATE`` / ``FOR NO KEY UPDATE`` where the
database has them (PostgreSQL), nothing where it serialises writers itself (SQLite), and
``SKIP LOCKED`` where it is supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, Generic, TypeVar, cast

from django.db import DatabaseError, connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


class Lock(Enum):
    NONE = ""
    UPDATE = "FOR UPDATE"
    NO_KEY_UPDATE = "FOR NO KEY UPDATE"


def _lock_clause(lock: Lock, *, skip_locked: bool = False) -> str:
    features = connection.features
    if lock is Lock.NONE or not features.has_select_for_update:
        return ""
    clause = lock.value
    if lock is Lock.NO_KEY_UPDATE and not features.has_select_for_no_key_update:
        clause = Lock.UPDATE.value
    if skip_locked and features.has_select_for_update_skip_locked:
        clause += " SKIP LOCKED"
    return clause


class RowSelect(Generic[M]):
    """``SELECT`` every column of ``model`` ``WHERE where`` (SQL whose parameters are marked
    ``%s``), optionally ordered and locked. ``param_fields`` names, for each ``%s`` in order (the
    condition's, then the order's), the field whose column it is compared with: its value is
    converted as that field stores it.

    ``RowSelect(Position, '"user_id" = %s AND "status" = %s', ("user", "status"))
    .fetch(user.pk, "open")`` is ``Position.objects.filter(user=user, status="open")``.

    ``then``: another select of the same model whose rows follow these in the one statement
    (``UNION ALL``, each side with its own order, limit and lock, run in that order); ``fetch``
    takes this select's parameters and then its. ``skip_locked``: rows another transaction has
    locked are left out instead of waited for.
    """

    def __init__(
        self,
        model: type[M],
        where: str,
        param_fields: Sequence[str],
        *,
        order_by: str = "",
        lock: Lock = Lock.NONE,
        skip_locked: bool = False,
        limit: int | None = None,
        then: RowSelect[M] | None = None,
    ) -> None:
        markers = where.count("%s") + order_by.count("%s")
        if markers != len(param_fields):
            raise ValueError(f"{len(param_fields)} parameter fields for {markers} parameters")
        self.model: type[M] = model
        if then is not None and then.model is not model:
            raise ValueError("a select's rows can only be followed by rows of the same model")
        self.where = where
        self.order_by = order_by
        self.lock = lock
        self.skip_locked = skip_locked
        self.limit = limit
        self.then = then
        meta = model._meta
        self._param_fields: list[Field[Any, Any]] = [meta.get_field(name) for name in param_fields]  # type: ignore[misc]
        if then is not None:
            self._param_fields += then._param_fields
        self._fields = list(meta.concrete_fields)
        self._attnames = [field.attname for field in self._fields]
        # Built at first use (the database's lock syntax and converters are known by then), then
        # kept: a process talks to one database.
        self._sql: str | None = None
        self._converters: list[tuple[int, Any, list[Any]]] | None = None

    def _statement(self) -> str:
        if self._sql is None:
            if self.then is None:
                self._sql = self._select()
            else:
                # Each side as a subquery in FROM: a locking clause is not allowed on a UNION's
                # own sides, and the subqueries keep their order and limit.
                columns = ", ".join(connection.ops.quote_name(field.column) for field in self._fields)
                self._sql = (
                    f"SELECT {columns} FROM ({self._select()}) AS first_rows "  # noqa: S608 (our own names)
                    f"UNION ALL SELECT {columns} FROM ({self.then._statement()}) AS then_rows"
                )
        return self._sql

    def _select(self) -> str:
        lock = _lock_clause(self.lock, skip_locked=self.skip_locked)
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in self._fields)
        table = quote(self.model._meta.db_table)
        parts = [f"SELECT {columns} FROM {table} WHERE {self.where}"]  # noqa: S608 (our own names and condition)
        if self.order_by:
            parts.append(f"ORDER BY {self.order_by}")
        if self.limit is not None:
            parts.append(f"LIMIT {int(self.limit)}")
        if lock:
            parts.append(lock)
        return " ".join(parts)

    def fetch(self, *params: Any) -> list[M]:
        """The rows, as model instances."""
        if len(params) != len(self._param_fields):
            raise TypeError(f"{len(self._param_fields)} parameters expected, {len(params)} given")
        bound = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self._param_fields, params, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(self._statement(), bound)
            rows = cursor.fetchall()
        conversions = self._conversions()
        instances = []
        for row in rows:
            values = list(row)
            for index, column, converters in conversions:
                for convert in converters:
                    values[index] = convert(values[index], column, connection)
            instances.append(self.model.from_db(connection.alias, self._attnames, values))
        return instances

    def _conversions(self) -> list[tuple[int, Any, list[Any]]]:
        """What turns each column's database value into the field's, as the ORM's compiler
        applies it (the backend's converters, then the field's ``from_db_value``)."""
        if self._converters is None:
            table = self.model._meta.db_table
            conversions = []
            for index, field in enumerate(self._fields):
                column = field.get_col(table)
                converters = [
                    *connection.ops.get_db_converters(column),
                    *field.get_db_converters(connection),  # type: ignore[attr-defined]
                ]
                if converters:
                    conversions.append((index, column, converters))
            self._converters = conversions
        return self._converters

    def first(self, *params: Any) -> M | None:
        rows = self.fetch(*params)
        return rows[0] if rows else None


_update_sql: dict[tuple[type[Model], tuple[str, ...]], tuple[list[Field[Any, Any]], str]] = {}


def row_update(instance: Model, fields: Sequence[str]) -> None:
    """``instance.save(update_fields=fields)`` with its SQL built once per model and fields: one
    ``UPDATE`` by primary key, ``auto_now`` fields stamped, no signals. Raises ``DatabaseError``
    when no row was updated, as ``save(update_fields=...)`` does."""
    model = type(instance)
    key = (model, tuple(fields))
    compiled = _update_sql.get(key)
    if compiled is None:
        meta = model._meta
        quote = connection.ops.quote_name
        targets: list[Field[Any, Any]] = [meta.get_field(name) for name in fields]  # type: ignore[misc]
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in targets)
        table, pk = quote(meta.db_table), quote(meta.pk.column)
        sql = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608 (our own names)
        compiled = _update_sql[key] = (targets, sql)
    targets, sql = compiled
    params = [field.get_db_prep_save(field.pre_save(instance, False), connection) for field in targets]
    params.append(model._meta.pk.get_db_prep_value(instance.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError(f"{model.__name__} {instance.pk}: the update affected {cursor.rowcount} rows")


_insert_sql: dict[type[Model], tuple[list[Field[Any, Any]], str]] = {}


def row_insert(instance: M) -> M:
    """``instance.save(force_insert=True)`` with its SQL built once per model: one ``INSERT`` of
    every column, defaults and ``auto_now`` stamps applied by the fields' ``pre_save``, no
    signals. For models whose primary key is set before the insert (our UUIDs); an
    ``IntegrityError`` (a unique key taken) is raised as ``save`` raises it."""
    model = type(instance)
    compiled = _insert_sql.get(model)
    if compiled is None:
        meta = model._meta
        if meta.pk is None or getattr(meta.pk, "db_returning", False):
            raise TypeError(f"{model.__name__}: row_insert needs a primary key set before the insert")
        quote = connection.ops.quote_name
        targets: list[Field[Any, Any]] = list(meta.local_concrete_fields)
        columns = ", ".join(quote(field.column) for field in targets)
        markers = ", ".join(["%s"] * len(targets))
        sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({markers})"  # noqa: S608 (our own names)
        compiled = _insert_sql[model] = (targets, sql)
    targets, sql = compiled
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in targets]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def column_value(model: type[Model], field_name: str, value: Any) -> Any:
    """``value`` as the field ``field_name`` of ``model`` stores it, for a hand-written statement."""
    field = cast("Field[Any, Any]", model._meta.get_field(field_name))
    return field.get_db_prep_save(value, connection)
