"""The firing queue: a tick enqueues what it crosses, once, in bounded chunks, and returns; the
consumer fires each entry once, in order per position, on as many threads as asked; the sweep
leaves queued triggers to the consumer and catches those whose queue was lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ledger.checks import ledger_check
from ledger.services import balance_adjust
from pricing.services.prices import PriceTick
from tests.accounts.factories import UserFactory
from tests.trading.fixtures_triggers import index_forget, index_members, place
from trading.models import Fill, Position, ProtectiveOrder
from trading.triggers import engine, sweep
from trading.triggers.consumer import fire_pending, firers_run, lease_key
from trading.triggers.index import redis_connection
from trading.triggers.queue import queue_depth, triggers_claim

pytestmark = pytest.mark.django_db(transaction=True)

PAPER_HOOK_ONLY = ["providers.venues.paper.services.paper_tick_hook"]


def tick(price: str) -> PriceTick:
    value = Decimal(price)
    return PriceTick(symbol="BTCUSD", bid=value, ask=value, provider="paper", ts=timezone.now())


def protective(position_id: Any, kind: str) -> ProtectiveOrder:
    return ProtectiveOrder.objects.get(position_id=position_id, kind=kind)


def closes(position_id: Any) -> list[Fill]:
    return list(Fill.objects.filter(position_id=position_id, kind=Fill.Kind.CLOSE))


def test_a_crossing_is_enqueued_once_and_fired_once(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")

    first = engine.tick_evaluate(tick("61000"))
    second = engine.tick_evaluate(tick("60900"))  # the same stop, crossed again before it fired

    assert (first.queued, second.queued, first.fired) == (1, 0, 0)
    assert protective(order.position_id, "stop_loss").status == "armed"  # the tick fired nothing
    assert Position.objects.get(pk=order.position_id).status == "open"
    assert queue_depth() == 1
    assert fire_pending() == 1
    assert fire_pending() == 0
    assert protective(order.position_id, "stop_loss").status == "fired"
    assert protective(order.position_id, "take_profit").status == "cancelled"
    assert len(closes(order.position_id)) == 1
    assert queue_depth() == 0
    assert index_members() == {}
    assert ledger_check() == []


def test_a_stop_loss_crossed_before_the_take_profit_fires_first(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="66000")

    assert engine.tick_evaluate(tick("61500")).queued == 1  # the stop, then the market turns
    assert engine.tick_evaluate(tick("66500")).queued == 1  # and crosses the target
    fire_pending()

    assert protective(order.position_id, "stop_loss").status == "fired"
    assert protective(order.position_id, "take_profit").status == "cancelled"
    (close,) = closes(order.position_id)
    assert close.order is not None and close.order.closed_by == "stop_loss"
    assert ledger_check() == []


def test_a_tick_costs_the_same_for_one_crossing_as_for_many(paper_market, staff, price_to):
    price_to("64000")
    traders: list[Any] = [UserFactory() for _ in range(8)]
    for trader in traders:
        balance_adjust(user=trader, amount=Decimal(5000), reason="test funding", actor=staff)
    place(traders[0], stop_loss="63000")
    for trader in traders[1:]:
        place(trader, stop_loss="62000")

    with CaptureQueriesContext(connection) as one:
        assert engine.tick_evaluate(tick("62500")).queued == 1
    with CaptureQueriesContext(connection) as seven:
        assert engine.tick_evaluate(tick("61500")).queued == 7

    assert len(one.captured_queries) == len(seven.captured_queries)
    assert not [q for q in seven.captured_queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert Fill.objects.filter(kind=Fill.Kind.CLOSE).count() == 0
    assert fire_pending() == 8
    assert Position.objects.filter(status="closed").count() == 8
    assert ledger_check() == []


def test_the_sweep_leaves_a_queued_stop_to_the_consumer(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):
        price_to("61500")  # cached for the sweep
    assert engine.tick_evaluate(tick("61500")).queued == 1

    outcome = sweep.triggers_sweep()

    assert outcome.fired == 0
    assert outcome.reindexed == []  # a queued trigger counts as indexed
    assert protective(order.position_id, "stop_loss").status == "armed"
    assert fire_pending() == 1
    assert len(closes(order.position_id)) == 1


def test_the_sweep_fires_a_stop_whose_queue_was_lost(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):
        price_to("61500")
    assert engine.tick_evaluate(tick("61500")).queued == 1
    index_forget()  # Redis flushed: the index, the queued record and the stream with it

    outcome = sweep.triggers_sweep()

    assert outcome.fired == 1
    assert protective(order.position_id, "stop_loss").status == "fired"
    assert len(closes(order.position_id)) == 1
    assert fire_pending() == 0
    assert ledger_check() == []


def test_a_stop_not_fired_goes_back_to_the_index(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000")
    stop = protective(order.position_id, "stop_loss")
    assert engine.tick_evaluate(tick("61500")).queued == 1
    assert f"p:{stop.pk}" not in index_members().get("bid_below", set())
    Position.objects.filter(pk=order.position_id).update(status="closing")  # a close is pending

    assert fire_pending() == 0

    assert protective(order.position_id, "stop_loss").status == "armed"
    assert f"p:{stop.pk}" in index_members()["bid_below"]
    Position.objects.filter(pk=order.position_id).update(status="open")
    assert engine.tick_evaluate(tick("61400")).queued == 1
    assert fire_pending() == 1


def test_the_sweep_fires_a_stop_queued_past_the_grace(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):
        price_to("61500")
    assert engine.tick_evaluate(tick("61500")).queued == 1

    with override_settings(TRIGGER_FIRE_QUEUED_GRACE_SECONDS=-1):  # no consumer ran in time
        outcome = sweep.triggers_sweep()

    assert outcome.fired == 1
    assert fire_pending() == 0  # the consumer's entry, late, changes nothing
    assert len(closes(order.position_id)) == 1
    assert ledger_check() == []


def _crash_through_eight_stops(paper_market: Any, staff: Any, price_to: Any) -> list[Any]:
    price_to("64000")
    traders: list[Any] = [UserFactory() for _ in range(8)]
    positions = []
    for trader in traders:
        balance_adjust(user=trader, amount=Decimal(5000), reason="test funding", actor=staff)
        positions.append(place(trader, stop_loss="62000").position_id)
    return positions


def test_a_crash_is_claimed_in_chunks_each_stop_once(paper_market, staff, price_to):
    positions = _crash_through_eight_stops(paper_market, staff, price_to)
    crash = tick("61000")

    claimed = [
        triggers_claim(symbol="BTCUSD", bid=crash.bid, ask=crash.ask, ts=crash.ts, limit=3) for _ in range(4)
    ]

    assert claimed == [3, 3, 2, 0]  # no call claims more than its chunk, none claims twice
    assert queue_depth() == 8
    assert index_members().get("bid_below", set()) == set()
    assert engine.tick_evaluate(tick("60900")).queued == 0
    assert fire_pending() == 8
    assert Position.objects.filter(pk__in=positions, status="closed").count() == 8
    assert all(len(closes(pk)) == 1 for pk in positions)
    assert ledger_check() == []


def test_one_process_fires_its_partitions_on_as_many_threads(paper_market, staff, price_to):
    positions = _crash_through_eight_stops(paper_market, staff, price_to)
    redis = redis_connection()
    stop = threading.Event()
    runner = threading.Thread(target=firers_run, kwargs={"concurrency": 2, "stop_event": stop}, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(redis.exists(lease_key(n)) for n in range(4)):
            time.sleep(0.05)
        holders = Counter(redis.get(lease_key(n)) for n in range(4))
        assert sorted(holders.values()) == [2, 2]  # two consumers, each its share

        assert engine.tick_evaluate(tick("61000")).queued == 8
        while time.monotonic() < deadline and Position.objects.filter(status="closed").count() < 8:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(30)

    assert not runner.is_alive()
    assert not any(redis.exists(lease_key(n)) for n in range(4))  # released on the way out
    assert Position.objects.filter(pk__in=positions, status="closed").count() == 8
    assert all(len(closes(pk)) == 1 for pk in positions)
    assert queue_depth() == 0
    assert ledger_check() == []
