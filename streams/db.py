"""The consumers' database work, on ``STREAM_DB_THREADS`` threads of this web process.

Channels' ``database_sync_to_async`` is thread-sensitive: outside a request, every call of
every socket of the process runs on asgiref's one sync thread, so one slow snapshot delays
every other socket's sign-in. Here the calls run on a pool of threads of their own (bounded:
with PostgreSQL each running call holds a connection of the process's pool), with Channels'
connection handling kept: stale connections are closed before and after each call, and with
``CONN_MAX_AGE`` 0 (the web's) the connection goes back (to the pool) after it.

Nothing a call does may depend on the thread it ran on: no transaction, lock or thread-local
outlives a call, and each call opens (takes) its own connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import close_old_connections

_P = ParamSpec("_P")
_R = TypeVar("_R")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def stream_db_executor() -> ThreadPoolExecutor:
    """The process's threads for socket database work (made on first use)."""
    global _executor  # noqa: PLW0603 - one per process
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=max(1, settings.STREAM_DB_THREADS), thread_name_prefix="stream-db"
            )
        return _executor


class StreamDatabaseSyncToAsync(SyncToAsync[_P, _R]):
    """``sync_to_async`` on ``stream_db_executor``, closing stale connections around the call."""

    def __init__(self, func: Callable[_P, _R]) -> None:
        super().__init__(func, thread_sensitive=False, executor=stream_db_executor())

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


stream_db = StreamDatabaseSyncToAsync
