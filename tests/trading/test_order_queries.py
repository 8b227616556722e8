"""How many queries a paper market order costs, pinned so that a regression shows.

The budget is for a trader adding to an open position on the paper venue (the steady state
of a busy trader), counted from the service call through the dispatch of its events after
commit, every statement included (BEGIN, SAVEPOINT, COMMIT). On PostgreSQL it is 61 (91
before the order path was trimmed: three transactions, four events dispatched one by one,
the catalogue and routing read per order):

- the risk check: risk limits, the live positions, the balances (3);
- one transaction (51): BEGIN; the trader's order lock (advisory); the position locked;
  the order row; the user accounts, and their lock together with the fees shard's (read,
  lock: 3); the collateral lock (in a savepoint: their lock, the ledger transaction, its
  entries, two balances: 7); ``order.created`` (2); the paper venue's book (its order, position,
  in savepoints: 9); the fill: the position read and updated (2), the fee (user accounts,
  the fees shard, then in a savepoint: lock, transaction, entries, two balances: 9), the
  fill and order rows (2), the margin call and liquidation re-armed (read, two cancelled,
  two armed: 5), three events (6), the stops the position shows (1); COMMIT;
- after commit (7): the events loaded, handed to webhooks and marked in one batch (3), and
  the trigger index of the re-armed margin call and liquidation (4, ``trading.triggers``).

Routing rules, the pair and its listings come from the process's catalogue cache; the
risk profile is read once and serves the fill.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marqetfi.core.models import Event
from tests.trading.fixtures_triggers import place
from trading.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES_BUDGET = 61


def test_a_paper_market_order_stays_within_its_query_budget(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))  # the position, the caches
    with CaptureQueriesContext(connection) as queries:
        order = place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))

    assert order.status == Order.Status.FILLED
    assert not Event.objects.filter(user=funded_trader, dispatched_at__isnull=True).exists()
    statements = [query["sql"] for query in queries.captured_queries]
    if connection.vendor == "postgresql":
        assert len(statements) <= POSTGRES_BUDGET, "\n".join(statements)
    assert sum(sql.startswith("COMMIT") for sql in statements) <= 1, "one transaction"
