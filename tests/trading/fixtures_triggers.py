"""Fixtures of the trigger engine's tests, imported by name where they are used.

A paper market that stands still where the test drives it (no spread, no slippage, no walk),
every category routed to the paper venue, and a trader funded through the ledger. The tests
commit for real (transactional database), so that the index is written after commit as in
production.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django_redis import get_redis_connection

from trading.models import Order
from trading.services.orders import OrderTerms, order_place


def place(user: Any, **terms: Any) -> Order:
    """An order on BTCUSD (1,000 USDC at 10x unless said otherwise), as ``POST /orders`` places it."""
    fields: dict[str, Any] = {
        "symbol": "BTCUSD",
        "side": "long",
        "type": "market",
        "collateral": Decimal(1000),
        "leverage": Decimal(10),
    }
    fields.update(terms)
    for name in ("price", "stop_loss", "take_profit"):
        if isinstance(fields.get(name), str):
            fields[name] = Decimal(fields[name])
    order, _ = order_place(user=user, order=OrderTerms(**fields))
    return order


def index_members(symbol: str = "BTCUSD", *, platform: bool = False) -> dict[str, set[str]]:
    """What the trigger index of ``symbol`` holds, per set; the platform's margin calls and
    liquidations (armed on every position) only when ``platform``."""
    from trading.models import ProtectiveOrder
    from trading.triggers.index import SETS, index_key

    risk = {
        f"p:{pk}"
        for pk in ProtectiveOrder.objects.filter(kind__in=ProtectiveOrder.RISK_KINDS).values_list(
            "pk", flat=True
        )
    }
    redis = get_redis_connection("default")
    members = {name: {m.decode() for m in redis.zrange(index_key(symbol, name), 0, -1)} for name in SETS}
    if not platform:
        members = {name: found - risk for name, found in members.items()}
    return {name: found for name, found in members.items() if found}


def index_forget() -> None:
    """Lose the whole trigger index (a Redis restart, a flush)."""
    redis = get_redis_connection("default")
    for key in redis.scan_iter("marqetfi:triggers:*"):
        redis.delete(key)
