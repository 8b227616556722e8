"""The firing consumer (``manage.py triggerfire``): fires what ticks enqueued, off the feed.

Each partition stream of the firing queue is read through the consumer group by one consumer
at a time: the one holding its lease (``SET NX PX`` on ``marqetfi:triggers:fire:lease:<n>``,
renewed between entries). One reader per partition keeps the order of every position's
triggers (a stop-loss before a later take-profit); partitions by position, rather than by
symbol, let several consumers share a crash on one symbol. One ``triggerfire`` process runs
``TRIGGER_FIRE_CONCURRENCY`` consumers in threads (``firers_run``), each taking at most its
share of the partitions, so a single process fires that many partitions in parallel; more
processes share the partitions by the same leases. A consumer that takes a partition
first claims what the previous holder left pending (``XAUTOCLAIM``: that holder's lease has
expired, so it is gone) and fires those entries before new ones.

An entry is fired through the firing service with the bid and ask of the tick that crossed it
(``protective_fire`` / ``order_fire``: exactly once under the position's lock, a no-op for a
trigger already fired, cancelled or whose position is closed), then settled: taken out of the
symbol's ``queued`` hash, put back in the index if it is still armed (a venue refusal, a close
pending, a row that no longer crosses: the next tick or sweep tries again, as before the
queue), and only then acknowledged and deleted. A crash between the commit and the
acknowledgement fires the entry again on restart, which changes nothing. An error that
escapes the firing service (the database unreachable) leaves the entry pending and stops
the partition's batch, so it is retried first, in order.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Final

from django.conf import settings
from django.db import close_old_connections, connection

from trading.triggers.firing import order_fire, protective_fire
from trading.triggers.index import (
    QUEUED,
    index_key,
    member_id,
    order_index,
    protective_index,
    redis_connection,
)
from trading.triggers.queue import GROUP, STREAM_PREFIX, groups_ensure, partitions, stream_key

logger = logging.getLogger(__name__)

LEASE_PREFIX: Final = f"{STREAM_PREFIX}lease:"
BATCH: Final = 100
RETRY_PAUSE_SECONDS: Final = 1.0

_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Entry = tuple[bytes, dict[bytes, bytes]]


def lease_key(partition: int) -> str:
    return f"{LEASE_PREFIX}{partition}"


def entry_fire(fields: dict[bytes, bytes]) -> bool:
    """Fire one queued entry and settle its trigger; True if this call fired it."""
    member = fields[b"member"].decode()
    symbol = fields[b"symbol"].decode()
    bid, ask = Decimal(fields[b"bid"].decode()), Decimal(fields[b"ask"].decode())
    kind, pk = member_id(member)
    if kind == "p":
        fired = protective_fire(protective_id=pk, bid=bid, ask=ask)
    else:
        fired = order_fire(order_id=pk, bid=bid, ask=ask)
    redis_connection().hdel(index_key(symbol, QUEUED), member)
    if not fired:  # still armed: back in the index (out of it if fired or cancelled meanwhile)
        (protective_index if kind == "p" else order_index)(pk)
    return fired


def _ack(key: str, entry_id: bytes) -> None:
    with redis_connection().pipeline(transaction=True) as pipe:
        pipe.xack(key, GROUP, entry_id)
        pipe.xdel(key, entry_id)
        pipe.execute()


def _entries(reply: Any) -> list[tuple[str, list[Entry]]]:
    """XREADGROUP's reply as (stream, entries); entries deleted meanwhile come back empty."""
    out: list[tuple[str, list[Entry]]] = []
    for stream, entries in reply or []:
        name = stream.decode() if isinstance(stream, bytes) else stream
        out.append((name, [(entry_id, fields) for entry_id, fields in entries]))
    return out


class PartitionLost(Exception):
    """This consumer's lease on a partition expired: another consumer may hold it now."""


class TriggerFirer:
    """One consumer process: holds what leases it can among ``partitions`` and drains them."""

    def __init__(
        self,
        *,
        partitions_wanted: Sequence[int] | None = None,
        name: str | None = None,
        batch: int = BATCH,
        block_ms: int = 1000,
        max_held: int | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.partitions = list(partitions_wanted) if partitions_wanted else list(range(partitions()))
        self.max_held = max_held if max_held is not None else len(self.partitions)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.lease_ms: int = settings.TRIGGER_FIRE_LEASE_MS
        self.held: dict[int, float] = {}  # partition -> monotonic time of the last renewal
        self.stop_event = stop_event or threading.Event()
        self.fired = 0

    # --- leases -------------------------------------------------------------------------

    def _renew(self, partition: int) -> bool:
        redis = redis_connection()
        ok = redis.register_script(_RENEW)(keys=[lease_key(partition)], args=[self.name, self.lease_ms])
        if ok:
            self.held[partition] = time.monotonic()
            return True
        self.held.pop(partition, None)
        logger.warning("trigger fire partition %s lost by %s", partition, self.name)
        return False

    def _renew_due(self, partition: int) -> None:
        stale = time.monotonic() - self.held.get(partition, 0.0) > self.lease_ms / 3000
        if stale and not self._renew(partition):
            raise PartitionLost(partition)

    def leases_refresh(self) -> None:
        """Renew the leases held, take the free ones (claiming what their last holder left)."""
        redis = redis_connection()
        for partition in self.partitions:
            if partition in self.held:
                self._renew(partition)
                continue
            if len(self.held) >= self.max_held:  # leave it to another consumer
                continue
            if redis.set(lease_key(partition), self.name, nx=True, px=self.lease_ms):
                self.held[partition] = time.monotonic()
                claimed = self.pending_claim(partition)
                logger.info(
                    "trigger fire partition %s taken by %s (%s pending claimed)",
                    partition,
                    self.name,
                    claimed,
                )

    def leases_release(self) -> None:
        redis = redis_connection()
        for partition in list(self.held):
            redis.register_script(_RELEASE)(keys=[lease_key(partition)], args=[self.name])
        self.held.clear()

    def pending_claim(self, partition: int) -> int:
        """Take over every entry pending in the partition (its previous holder is gone)."""
        redis = redis_connection()
        cursor: Any = "0-0"
        claimed = 0
        while True:
            reply = redis.xautoclaim(
                stream_key(partition), GROUP, self.name, min_idle_time=0, start_id=cursor, count=500
            )
            cursor, ids = reply[0], reply[1]
            claimed += len(ids)
            if cursor in (b"0-0", "0-0"):
                return claimed

    # --- firing -------------------------------------------------------------------------

    def pending_fire(self, partition: int) -> tuple[int, bool]:
        """Fire the entries of the partition delivered to this consumer and not yet settled
        (claimed from a dead holder, or left by a failure), oldest first; returns how many
        were settled and whether one failed (it and those after it stay pending)."""
        redis = redis_connection()
        key = stream_key(partition)
        settled = 0
        while not self.stop_event.is_set():
            reply = redis.xreadgroup(GROUP, self.name, {key: b"0"}, count=self.batch)
            batch = [entry for _, entries in _entries(reply) for entry in entries]
            if not batch:
                break
            done, failed = self._entries_fire(partition, key, batch)
            settled += done
            if failed or not done:
                return settled, True
        return settled, False

    def new_fire(self, *, block_ms: int | None) -> int:
        """Read one batch of new entries from every held partition (waiting up to ``block_ms``
        for one) and fire them; returns how many were settled."""
        if not self.held:
            return 0
        streams: dict[Any, Any] = {stream_key(partition): ">" for partition in self.held}
        reply = redis_connection().xreadgroup(GROUP, self.name, streams, count=self.batch, block=block_ms)
        settled = 0
        for key, entries in _entries(reply):
            partition = int(key.removeprefix(STREAM_PREFIX))
            try:
                settled += self._entries_fire(partition, key, entries)[0]
            except PartitionLost:
                continue
        return settled

    def _entries_fire(self, partition: int, key: str, batch: Iterable[Entry]) -> tuple[int, bool]:
        settled = 0
        close_old_connections()
        for entry_id, fields in batch:
            if self.stop_event.is_set():
                break
            if partition in self.held:
                self._renew_due(partition)
            if not fields:  # deleted after its delivery (settled by a previous holder)
                _ack(key, entry_id)
                continue
            try:
                self.fired += entry_fire(fields)
            except (KeyError, ValueError, ArithmeticError):
                logger.exception("trigger fire entry %s of %s malformed, dropped", entry_id, key)
            except Exception:
                logger.exception("trigger fire entry %s of %s failed; retried", entry_id, key)
                close_old_connections()
                return settled, True
            _ack(key, entry_id)
            settled += 1
        return settled, False

    def run_once(self) -> int:
        """One round: leases, each held partition's pending entries, then one batch of new
        ones (waiting up to ``block_ms`` for them); returns how many entries were settled."""
        self.leases_refresh()
        if not self.held:
            self.stop_event.wait(self.lease_ms / 3000)
            return 0
        settled = 0
        failed = False
        for partition in list(self.held):
            try:
                done, stuck = self.pending_fire(partition)
            except PartitionLost:
                continue
            settled += done
            failed = failed or stuck
        if failed:
            self.stop_event.wait(RETRY_PAUSE_SECONDS)
            return settled
        return settled + self.new_fire(block_ms=min(self.block_ms, self.lease_ms // 3))

    def run_forever(self) -> None:
        groups_ensure()
        close_old_connections()
        logger.info("trigger firing consumer %s on partitions %s", self.name, self.partitions)
        try:
            while not self.stop_event.is_set():
                try:
                    self.run_once()
                except Exception:
                    logger.exception("trigger firing round failed")
                    close_old_connections()
                    self.stop_event.wait(RETRY_PAUSE_SECONDS)
        finally:
            self.leases_release()
            connection.close()


def firers_run(
    *,
    concurrency: int,
    partitions_wanted: Sequence[int] | None = None,
    batch: int = BATCH,
    stop_event: threading.Event | None = None,
) -> list[TriggerFirer]:
    """Run ``concurrency`` consumers in threads of this process until ``stop_event`` is set,
    then return them (stopped, leases released). Each takes at most its share of the
    partitions (``ceil(partitions / concurrency)``) and drains them in parallel with the
    others: threads wait on the database and Redis, so one process fires up to
    ``concurrency`` partitions at once. Partitions left free (another process holds them, a
    thread's share is full) are taken by whichever consumer, here or elsewhere, has room."""
    wanted = list(partitions_wanted) if partitions_wanted else list(range(partitions()))
    count = max(1, min(concurrency, len(wanted)))
    share = -(-len(wanted) // count)
    stop = stop_event or threading.Event()
    base = f"{socket.gethostname()}-{os.getpid()}"
    firers = [
        TriggerFirer(
            partitions_wanted=wanted,
            name=f"{base}-{n}" if count > 1 else base,
            batch=batch,
            max_held=share,
            stop_event=stop,
        )
        for n in range(count)
    ]
    threads = [
        threading.Thread(target=firer.run_forever, name=f"triggerfire-{n}", daemon=True)
        for n, firer in enumerate(firers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)  # in slices: the main thread must see SIGTERM
    return firers


def fire_pending(*, consumer: str = "inline") -> int:
    """Fire everything queued now, in this thread, whoever it was delivered to; returns how
    many fired. For tests and for an operator with no consumer running: while consumers run,
    it would take their entries from them."""
    groups_ensure()
    firer = TriggerFirer(name=consumer)
    for partition in firer.partitions:
        firer.pending_claim(partition)
        firer.pending_fire(partition)
    firer.held = dict.fromkeys(firer.partitions, time.monotonic())  # read all, no lease
    firer.lease_ms = 10**9  # never renewed
    while firer.new_fire(block_ms=None):
        pass
    return firer.fired
