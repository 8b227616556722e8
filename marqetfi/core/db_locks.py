"""Transaction-scoped advisory locks: a named lock on a key that no row stands for.

``advisory_xact_lock("orders", user_id)`` waits until no other transaction holds the same
(name, key) and keeps it until the transaction ends. PostgreSQL only; elsewhere (SQLite,
which serialises writers anyway) it does nothing. Call it inside ``transaction.atomic``.
"""

from __future__ import annotations

import zlib

from django.db import connection


def _int4(text: str) -> int:
    """A stable signed 32-bit number for ``text`` (the same in every process)."""
    value = zlib.crc32(text.encode())
    return value - 2**32 if value >= 2**31 else value


def advisory_xact_lock(name: str, key: object) -> None:
    """Hold the advisory lock (``name``, ``key``) until the current transaction ends."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_int4(name), _int4(str(key))])
