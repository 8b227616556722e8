"""Which users have no enabled webhook endpoint, remembered by each process.

Most users never register an endpoint, so most hand-overs of the outbox would query the
endpoints table for nothing. A process remembers the users it found without one, until
``webhook_endpoints_generation`` moves: it is bumped when an endpoint is created or saved
enabled (``webhooks.signals``), the only changes after which a user found without an
enabled endpoint may have one. Only that answer is remembered; a user with endpoints is
looked up every time, so a change to their endpoints counts at once.

The generation is read from Redis on every hand-over (``check_interval`` 0: one GET, no SQL),
so an endpoint whose creation has returned takes the very next event, in any process. If
Redis cannot be read, the endpoints are queried and what was remembered is dropped; a bump
lost to a Redis error at commit is covered by forgetting every answer after
``REMEMBERED_FOR`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from marqetfi.core.runtime import Generation

logger = logging.getLogger(__name__)

webhook_endpoints_generation = Generation("webhook_endpoints", check_interval=0.0)

REMEMBERED_FOR = 60.0
REMEMBERED_AT_MOST = 100_000

Stamp = tuple[int, int]


class UsersWithoutEndpoints:
    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._since = 0.0
        self._users: set[Any] = set()

    def candidates(self, user_ids: Iterable[Any]) -> tuple[Stamp | None, set[Any]]:
        """The users among ``user_ids`` that may have an enabled endpoint (to query), and the
        stamp to give back to ``remember`` with those the query found without one."""
        users = set(user_ids)
        try:
            stamp = self.generation.stamp()
        except Exception:  # Redis down: the query answers, as without the cache
            logger.warning("Cannot read the webhook endpoints generation; querying", exc_info=True)
            self.clear()
            return None, users
        now = time.monotonic()
        with self._lock:
            if stamp != self._stamp or now - self._since >= REMEMBERED_FOR:
                self._users, self._stamp, self._since = set(), stamp, now
            return stamp, users - self._users

    def remember(self, stamp: Stamp | None, user_ids: Iterable[Any]) -> None:
        """Users the query made under ``stamp`` found without an enabled endpoint."""
        with self._lock:
            if stamp is None or stamp != self._stamp:
                return  # the generation moved since the query began: its answer may be stale
            if len(self._users) >= REMEMBERED_AT_MOST:
                self._users = set()
            self._users.update(user_ids)

    def clear(self) -> None:
        with self._lock:
            self._users, self._stamp = set(), None


users_without_endpoints = UsersWithoutEndpoints(webhook_endpoints_generation)
