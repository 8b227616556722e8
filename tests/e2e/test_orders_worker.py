"""Order reconciliation run by a real Celery worker against the fake Lighter (``fake_lighter``,
the "lighter" provider configured as in ``tests/trading/test_lighter_trading.py``).

The crash test leaves an order ``unknown`` (Lighter took it but answered after our timeout),
has a worker run ``orders_reconcile`` while Lighter holds the worker's look-up of the order
unanswered, SIGKILLs the worker there, then lets Lighter answer (the order filled) and has a
new worker reconcile: the order is filled once, with one fill, one position, one fee.

The workers sign with the tests' wire signer (``tests/e2e/lighter_worker.py``).
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from conftest import bearer_client
from ledger.checks import ledger_check
from ledger.models import LedgerTransaction, TransactionKind
from ledger.selectors import user_balances
from marqetfi.celery import app
from marqetfi.core.models import Event
from providers import registry
from providers.venues.lighter.adapter import client_order_index
from tests.contract.lighter.fake_lighter import FakeLighter
from tests.contract.lighter.test_lighter_accounts import wire_signer  # noqa: F401 - the fixture
from tests.e2e.conftest import start_celery_worker
from tests.e2e.test_webhooks_worker import wait_for
from tests.trading.test_lighter_trading import (  # noqa: F401 - the fixtures
    ETH_ORDER,
    _trader,
    fake,
    lighter,
    place,
    sub_account,
)
from trading.models import Fill, Order, Position
from trading.services.orders import RECONCILE_AFTER
from trading.services.venues import VENUE_ACCOUNT_FUND
from trading.tasks import orders_reconcile

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIGHTER_WORKER = "tests.e2e.lighter_worker"
CREATE_ORDER = "sendTx:14"
LOOK_UP = "accountActiveOrders"  # the first request of ``get_order``
RECEIVED = re.compile(r"Task trading\.tasks\.orders_reconcile\[[^]]+\] received")
# What each run returned: how many orders it settled.
SUCCEEDED = re.compile(r"Task trading\.tasks\.orders_reconcile\[[^]]+\] succeeded in [0-9.e-]+s: (\d+)")


@pytest.fixture
def own_queue_env(e2e_env: dict[str, str], lighter: FakeLighter) -> Iterator[dict[str, str]]:  # noqa: F811
    """A queue of this test's own, so that no other worker of the session takes its tasks."""
    queue = f"{e2e_env['CELERY_QUEUE']}-orders-{uuid.uuid4().hex[:6]}"
    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        yield {**e2e_env, "CELERY_QUEUE": queue}
    finally:
        app.conf.task_default_queue = before
        registry.config_generation.bump()  # the rows go with the test: processes forget them


def _observed(user: Any, order_id: str) -> dict[str, Any]:
    """What the order has left in the database: its row and everything recorded for it."""
    order = Order.objects.get(pk=order_id)
    return {
        "order": (
            order.status,
            order.resource_version,
            order.updated_at,
            order.filled_size,
            order.position_id,
        ),
        "fills": Fill.objects.filter(order_id=order_id).count(),
        "positions": Position.objects.filter(user=user).count(),
        "ledger": Counter(
            LedgerTransaction.objects.filter(reference=f"order:{order_id}").values_list("kind", flat=True)
        ),
        "events": Counter(Event.objects.filter(user=user).values_list("type", flat=True)),
    }


def test_a_worker_killed_while_reconciling_an_order_leaves_it_to_the_next_which_fills_it_once(
    lighter: FakeLighter,  # noqa: F811 - the fixture imported above
    own_queue_env: dict[str, str],
    e2e_log_dir: Path,
) -> None:
    lighter.stream.stop()  # no account stream: only the reconciler learns what became of the order
    trader = _trader()
    # Lighter takes the CreateOrder but answers after our 2 s timeout: the order is unknown.
    lighter.hold(CREATE_ORDER)
    placed = place(trader, ETH_ORDER)
    assert placed["status"] == "unknown"
    lighter.release(CREATE_ORDER)  # Lighter executes it after all
    account, venue_id = sub_account(trader), client_order_index(placed["id"])
    wait_for(lambda: (lighter.order(account, venue_id) or {}).get("status") == "filled", "filled at Lighter")
    # The order has been without an answer for RECONCILE_AFTER: beat's next pass asks about it.
    Order.objects.filter(pk=placed["id"]).update(
        updated_at=timezone.now() - RECONCILE_AFTER - timedelta(seconds=1)
    )
    before = _observed(trader, placed["id"])
    assert before["order"][0] == Order.Status.UNKNOWN and before["fills"] == before["positions"] == 0
    assert before["ledger"] == {TransactionKind.ORDER_COLLATERAL_LOCK: 1, VENUE_ACCOUNT_FUND: 1}
    assert before["events"] == {"order.created": 1, "order.updated": 1}

    # The worker asks Lighter about the order; Lighter keeps the question unanswered.
    lighter.hold(LOOK_UP)
    first = start_celery_worker(own_queue_env, e2e_log_dir, module=LIGHTER_WORKER)
    try:
        orders_reconcile.delay()
        wait_for(lambda: lighter.held(LOOK_UP) == 1, "the worker's look-up at Lighter", first)
        first.process.stop(signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        first.process.stop()
    killed_log = first.process.output()
    assert RECEIVED.search(killed_log)  # it had the task ...
    assert "succeeded" not in killed_log and "raised" not in killed_log  # ... and died in it
    assert _observed(trader, placed["id"]) == before  # nothing half-done

    lighter.release(LOOK_UP)  # Lighter answers again: the order is filled there
    second = start_celery_worker(own_queue_env, e2e_log_dir, module=LIGHTER_WORKER)
    try:
        worker_up = time.monotonic() - killed_at
        orders_reconcile.delay()  # beat's next pass
        wait_for(
            lambda: Order.objects.get(pk=placed["id"]).status != Order.Status.UNKNOWN,
            "the order settled",
            second,
        )
        recovered = time.monotonic() - killed_at
        orders_reconcile.delay()  # and the one after: nothing left to do
        wait_for(lambda: len(SUCCEEDED.findall(second.process.output())) == 2, "both passes run", second)
        output = second.process.output()
    finally:
        second.process.stop()

    shown = bearer_client(trader).get(f"/api/v1/orders/{placed['id']}").json()
    assert (shown["status"], shown["filled_size"], shown["avg_fill_price"]) == ("filled", "0.1653", "3024.66")
    order = Order.objects.get(pk=placed["id"])
    (fill,) = Fill.objects.filter(order=order)
    (position,) = Position.objects.filter(user=trader)
    assert (fill.size, fill.price, fill.position_id) == (Decimal("0.1653"), Decimal("3024.66"), position.pk)
    assert (position.size, position.entry_price, position.account_ref) == (
        Decimal("0.1653"),
        Decimal("3024.66"),
        str(account),
    )
    assert _observed(trader, placed["id"])["ledger"] == {
        TransactionKind.ORDER_COLLATERAL_LOCK: 1,
        VENUE_ACCOUNT_FUND: 1,
        TransactionKind.FEE: 1,
    }
    balances = user_balances(user=trader)
    assert order.fee == Decimal("0.25")  # 5 bps of 500, charged once
    assert (balances.available, balances.margin) == (Decimal("1000") - 100 - order.fee, Decimal("100"))
    events = Event.objects.filter(user=trader)
    assert Counter(events.values_list("type", flat=True)) == {
        "order.created": 1,
        "order.updated": 1,  # unknown
        "order.filled": 1,
        "trade.executed": 1,
        "position.opened": 1,
    }
    assert sorted(events.values_list("seq", flat=True)) == list(range(1, events.count() + 1))
    assert lighter.tx_types().count(14) == 1  # the order was sent once
    assert SUCCEEDED.findall(output) == ["1", "0"]  # settled by the first pass, nothing left after
    assert "Traceback" not in output
    assert ledger_check() == []
    print(
        f"\nFAULT worker killed while reconciling an order: a new worker up {worker_up:.2f} s after"
        f" the kill; the order filled {recovered:.2f} s after the kill"
        f" ({recovered - worker_up:.2f} s after the worker was up)"
    )
