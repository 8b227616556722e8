"""On PostgreSQL, parameters are bound by the server and a statement run often on a connection
is prepared there (``DB_PREPARED_STATEMENTS``, ``DB_PREPARE_THRESHOLD``); off, neither."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from conftest import requires_postgres
from ledger.models import LedgerAccount

BASE_MODULE = "marqetfi.settings.base"


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db
def test_a_statement_run_often_on_a_connection_is_prepared_there_and_answers_the_same() -> None:
    assert settings.DATABASES["default"]["OPTIONS"]["server_side_binding"] is True
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    LedgerAccount.objects.create(kind=LedgerAccount.Kind.FEES, name="shard-1", balance=Decimal("1.5"))

    def read() -> list[tuple[str, Decimal]]:
        return list(LedgerAccount.objects.filter(kind="fees", name="shard-1").values_list("name", "balance"))

    answers = [read() for _ in range(threshold + 2)]
    assert answers == [[("shard-1", Decimal("1.500000"))]] * (threshold + 2)
    prepared = prepared_statements()
    assert any('"ledger_ledgeraccount"' in statement and "$1" in statement for statement in prepared)


@pytest.fixture
def settings_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The base settings imported afresh under a PostgreSQL URL and the environment a test sets."""
    base = sys.modules[BASE_MODULE]

    def load(**environ: str) -> ModuleType:
        monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/marqetfi")
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop(BASE_MODULE, None)
        return importlib.import_module(BASE_MODULE)

    yield load
    sys.modules[BASE_MODULE] = base


def test_prepared_statements_are_on_by_default_and_can_be_turned_off(settings_with: Any) -> None:
    options = settings_with().DATABASES["default"]["OPTIONS"]
    assert options["server_side_binding"] is True and options["prepare_threshold"] == 5
    options = settings_with(DB_PREPARE_THRESHOLD="2").DATABASES["default"]["OPTIONS"]
    assert options["prepare_threshold"] == 2
    options = settings_with(DB_PREPARED_STATEMENTS="false").DATABASES["default"]["OPTIONS"]
    assert "server_side_binding" not in options and "prepare_threshold" not in options
