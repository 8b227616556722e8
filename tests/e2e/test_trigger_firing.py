"""The firing consumer as a process: killed with SIGKILL in the middle of a crash's batch and
started again, it fires every stop exactly once."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count

from demo.services import demo_market_ensure
from ledger.checks import ledger_check
from ledger.services import balance_adjust
from pricing.services.paper import paper_price_drive
from providers import registry
from tests.accounts.factories import UserFactory
from tests.e2e.conftest import ManagedProcess, start_process
from trading.models import Fill, Position, ProtectiveOrder
from trading.services.orders import OrderTerms, order_place
from trading.triggers.index import redis_connection
from trading.triggers.queue import queue_depth

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

POSITIONS = 24
WAIT_SECONDS = 120.0


def _fired() -> int:
    return ProtectiveOrder.objects.filter(kind="stop_loss", status="fired").count()


def _wait(process: ManagedProcess, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if ready():
            return
        if not process.alive():
            process.fail(f"{process.name} exited before {what}")
        time.sleep(0.05)
    process.fail(f"not {what} within {WAIT_SECONDS} s")


def test_a_consumer_killed_mid_batch_leaves_every_stop_fired_exactly_once(
    e2e_env: dict[str, str], e2e_log_dir: Path
) -> None:
    for key in redis_connection().scan_iter("marqetfi:triggers:*"):
        redis_connection().delete(key)
    registry.reset_cache()
    demo_market_ensure()
    staff: Any = UserFactory(is_staff=True)
    paper_price_drive(symbol="BTCUSD", price=Decimal(64000))
    for _ in range(POSITIONS):
        trader: Any = UserFactory()
        balance_adjust(user=trader, amount=Decimal(2000), reason="test funding", actor=staff)
        order_place(
            user=trader,
            order=OrderTerms(
                symbol="BTCUSD",
                side="long",
                type="market",
                collateral=Decimal(100),
                leverage=Decimal(5),
                stop_loss=Decimal(62000),
            ),
        )
    # The crash: the tick (in this process, as the feed's) enqueues every stop and returns.
    paper_price_drive(symbol="BTCUSD", price=Decimal(60000))
    assert queue_depth() == POSITIONS
    assert _fired() == 0

    env = {**e2e_env, "TRIGGER_FIRE_LEASE_MS": "1000"}  # a dead consumer's partitions pass on fast
    command = [sys.executable, "manage.py", "triggerfire"]
    first = start_process("fire-1", command, env, e2e_log_dir)
    try:
        _wait(first, lambda: _fired() >= 3, "three stops fired")
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(timeout=10)
    finally:
        first.stop()
    killed_at = _fired()
    assert killed_at < POSITIONS, "the consumer finished before it was killed"

    second = start_process("fire-2", command, env, e2e_log_dir)
    try:
        _wait(second, lambda: _fired() == POSITIONS and queue_depth() == 0, "every stop fired")
    finally:
        second.stop()

    assert Position.objects.filter(symbol="BTCUSD", status="closed").count() == POSITIONS
    per_position = Fill.objects.filter(kind=Fill.Kind.CLOSE).values("position_id").annotate(n=Count("pk"))
    assert sorted(row["n"] for row in per_position) == [1] * POSITIONS
    assert not ProtectiveOrder.objects.filter(kind="stop_loss", status="armed").exists()
    assert ledger_check() == []
