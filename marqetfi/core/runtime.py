"""Runtime change propagation: a generation counter in Redis that every process polls cheaply.

A writer bumps the counter after its transaction commits; readers keep what they loaded
together with the generation they loaded it at, and look at Redis at most once per
``check_interval`` seconds. A change therefore reaches every web, worker, beat and feed
process within about that interval, with no restart and one Redis GET per interval.
"""

from __future__ import annotations

import threading
import time

from django.db import transaction
from django_redis import get_redis_connection


class Generation:
    def __init__(self, key: str, check_interval: float = 1.0) -> None:
        self.key = f"marqetfi:generation:{key}"
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._value: int | None = None
        self._checked_at = 0.0

    def current(self) -> int:
        """The generation, read from Redis at most once per ``check_interval`` in this process."""
        now = time.monotonic()
        with self._lock:
            if self._value is None or now - self._checked_at >= self.check_interval:
                raw = get_redis_connection("default").get(self.key)
                self._value = int(raw or 0)
                self._checked_at = now
            return self._value

    def bump(self) -> None:
        """Announce a change; runs after the surrounding transaction commits."""

        def incr() -> None:
            get_redis_connection("default").incr(self.key)
            with self._lock:
                self._checked_at = 0.0  # this process sees its own change at once

        transaction.on_commit(incr)
