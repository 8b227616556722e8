"""Runtime change propagation: a generation counter in Redis that every process polls cheaply.

A writer bumps the counter after its transaction commits; readers keep what they loaded
together with the generation they loaded it at, and look at Redis at most once per
``check_interval`` seconds. A change therefore reaches every web, worker, beat and feed
process within about that interval, with no restart and one Redis GET per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.db import transaction
from django_redis import get_redis_connection
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Generation:
    def __init__(self, key: str, check_interval: float = 1.0) -> None:
        self.key = f"marqetfi:generation:{key}"
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._value: int | None = None
        self._checked_at = 0.0
        self._local_changes = 0

    def current(self) -> int:
        """The generation, read from Redis at most once per ``check_interval`` in this process."""
        now = time.monotonic()
        with self._lock:
            if self._value is None or now - self._checked_at >= self.check_interval:
                raw = get_redis_connection("default").get(self.key)
                self._value = int(raw or 0)
                self._checked_at = now
            return self._value

    def stamp(self) -> tuple[int, int]:
        """What a cache compares to know whether it is still good: the generation (as
        ``current``) and this process's own changes, counted at once (before its commit: a
        test's transaction that never commits still empties the caches of its process)."""
        return self.current(), self._local_changes

    def bump(self, *, robust: bool = False) -> None:
        """Announce a change; every process sees it after the surrounding transaction commits,
        this one at once too (see ``stamp``). ``robust``: a Redis error at commit is logged
        instead of raised (the caller's transaction has committed by then either way)."""
        with self._lock:
            self._local_changes += 1

        def incr() -> None:
            get_redis_connection("default").incr(self.key)
            with self._lock:
                self._checked_at = 0.0  # this process sees its own change at once

        transaction.on_commit(incr, robust=robust)


class GenerationCache(Generic[K, V]):
    """Values read from the database, kept by this process until ``generation`` moves on.

    ``get(key, load)`` answers from memory while the generation stands; a change announced
    anywhere (``Generation.bump``) empties it within the generation's check interval, at
    once in the process that made it. ``None`` is never stored: ``load`` raising leaves
    nothing behind either. ``max_entries``: a cache keyed by something unbounded (users) is
    emptied when it reaches that many values, so a process never holds more.

    If Redis cannot be read, nothing is known about changes made elsewhere: ``get`` forgets
    what it held and answers from ``load`` (the database) until Redis answers again.
    """

    def __init__(self, generation: Generation, *, max_entries: int | None = None) -> None:
        self.generation = generation
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._values: dict[K, V] = {}

    def get(self, key: K, load: Callable[[], V]) -> V:
        try:
            stamp = self.generation.stamp()
        except RedisError:
            logger.warning("Cannot read the %s generation; loading without the cache", self.generation.key)
            self.clear()
            return load()
        with self._lock:
            if stamp != self._stamp:
                self._values, self._stamp = {}, stamp
            elif key in self._values:
                return self._values[key]
        value = load()
        with self._lock:
            if self._stamp == stamp:
                if self.max_entries is not None and len(self._values) >= self.max_entries:
                    self._values = {}
                self._values[key] = value
        return value

    def clear(self) -> None:
        with self._lock:
            self._values, self._stamp = {}, None
