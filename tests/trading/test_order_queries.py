"""How many queries a paper market order costs, pinned so that a regression shows.

The budget is for a trader adding to an open position on the paper venue (the steady state
of a busy trader) at a price that moved since their last order, counted from the service
call through the dispatch of its events after commit, every statement included (BEGIN,
SAVEPOINT, COMMIT). On PostgreSQL it is 19 (34 before the risk check read nothing, the
ledger postings and the events were written in one statement each, the paper book dropped
its savepoint and the hand-over after commit its reads; 61 before the fill was trimmed, 91
before the order path was):

- the risk check reads nothing: the risk limits come from the process's cache
  (``trading.services.risk``), and the exposure and available balance are checked on the
  position and accounts the transaction locks;
- one transaction (18): BEGIN; the trader's order lock (advisory); the position locked (and
  kept for the exposure check and the fill); the order row; the user accounts and the fees
  shard locked together (1); the collateral lock (the ledger transaction, its entries and
  the balances in one statement, on the accounts locked just before: 1); ``order.created``
  (its number and row in one statement: 1); the paper venue's book (no savepoint: its
  position locked, its order inserted filled unless the client id is taken, then the
  position moved: 3); the fill: the position updated (1), the fee (one statement, on the
  same locked accounts: 1), the fill and order
  rows (2), the armed stops read (1), the margin call and liquidation moved in place (1),
  three events (a block of numbers and the rows in one statement: 1); COMMIT;
- after commit (1): the events, kept in memory, handed over and marked dispatched in one
  update; the trader has no webhook endpoint, which the process remembers from the first
  order (one Redis GET of the endpoints' generation, no query). The trigger index of the
  moved margin call and liquidation is one Redis pipeline, no query.

Most of these statements are built once per process and only bound per order
(``marqetfi.core.rows``), not compiled by the ORM each time: the count is the same, the CPU
is not. Routing rules, the pair and its listings come from the process's catalogue cache; the
risk profile is read once and serves the fill; the stops read for the fill serve the
position's event.
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

POSTGRES_BUDGET = 19


def test_a_paper_market_order_stays_within_its_query_budget(funded_trader: Any, price_to: Any) -> None:
    price_to("64000")
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))  # the position, the caches
    price_to("64100")  # the entry moves, and the margin call and liquidation with it
    with CaptureQueriesContext(connection) as queries:
        order = place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))

    assert order.status == Order.Status.FILLED
    assert not Event.objects.filter(user=funded_trader, dispatched_at__isnull=True).exists()
    statements = [query["sql"] for query in queries.captured_queries]
    if connection.vendor == "postgresql":
        assert len(statements) <= POSTGRES_BUDGET, "\n".join(statements)
    assert sum(sql.startswith("COMMIT") for sql in statements) <= 1, "one transaction"
