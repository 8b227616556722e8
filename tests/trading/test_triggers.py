"""The trigger engine: stops, take-profits, trailing stops and resting limit orders fire when
the market crosses them, exactly once, from the tick or from the sweep."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from conftest import requires_postgres
from ledger.checks import ledger_check
from ledger.selectors import user_balances
from pricing.errors import StalePrice
from pricing.services.prices import PriceTick
from providers.errors import ProviderError
from providers.venues.paper.adapter import PaperVenue
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from tests.trading.fixtures_triggers import index_forget, index_members, place
from trading import tasks
from trading.models import Fill, Order, Position, ProtectiveOrder
from trading.services.orders import position_close_limit
from trading.triggers import engine, firing, index, sweep
from trading.triggers.consumer import fire_pending

pytestmark = pytest.mark.django_db(transaction=True)

PAPER_HOOK_ONLY = ["providers.venues.paper.services.paper_tick_hook"]


def protective(position_id: Any, kind: str) -> ProtectiveOrder:
    return ProtectiveOrder.objects.filter(position_id=position_id, kind=kind).latest("created_at")


def closes(position_id: Any) -> list[Fill]:
    return list(Fill.objects.filter(position_id=position_id, kind=Fill.Kind.CLOSE))


def tick(price: str, *, market_open: bool = True, symbol: str = "BTCUSD") -> PriceTick:
    value = Decimal(price)
    return PriceTick(
        symbol=symbol, bid=value, ask=value, provider="paper", ts=timezone.now(), market_open=market_open
    )


def test_a_stop_loss_fires_once_and_closes_the_position(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000")
    stop = protective(order.position_id, "stop_loss")
    assert index_members() == {"bid_below": {f"p:{stop.pk}"}}

    price_to("62001")
    assert Position.objects.get(pk=order.position_id).status == "open"

    price_to("62000")
    price_to("61000")

    stop.refresh_from_db()
    assert (stop.status, stop.fired_price) == ("fired", Decimal("62000"))
    assert stop.close_order is not None and stop.close_order.closed_by == "stop_loss"
    position = Position.objects.get(pk=order.position_id)
    assert position.status == "closed"
    [fill] = closes(order.position_id)
    assert fill.price == Decimal("62000")
    assert fill.realized_pnl < 0
    assert user_balances(user=funded_trader).margin == 0
    assert index_members() == {}
    assert ledger_check() == []


def test_a_take_profit_closes_a_short_at_the_ask(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, side="short", take_profit="60000")

    price_to("60001")
    assert Position.objects.get(pk=order.position_id).status == "open"
    price_to("60000")

    assert protective(order.position_id, "take_profit").status == "fired"
    [fill] = closes(order.position_id)
    assert (fill.price, fill.realized_pnl > 0) == (Decimal("60000"), True)
    assert Position.objects.get(pk=order.position_id).status == "closed"
    assert ledger_check() == []


def test_a_trailing_stop_by_percent_rises_with_the_bid_then_fires_on_the_retrace(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, trailing_stop={"percent": "2"})
    trailing = protective(order.position_id, "trailing_stop")
    assert (trailing.best_price, trailing.trigger_price) == (Decimal("64000"), Decimal("62720"))

    price_to("66000")
    trailing.refresh_from_db()
    assert (trailing.best_price, trailing.trigger_price) == (Decimal("66000"), Decimal("64680"))

    price_to("65000")  # a lower high moves nothing
    trailing.refresh_from_db()
    assert (trailing.best_price, trailing.trigger_price) == (Decimal("66000"), Decimal("64680"))

    price_to("64681")
    assert trailing.status == "armed"
    price_to("64680")

    trailing.refresh_from_db()
    assert (trailing.status, trailing.fired_price) == ("fired", Decimal("64680"))
    [fill] = closes(order.position_id)
    assert fill.price == Decimal("64680")
    assert fill.realized_pnl > 0  # the stop moved above the entry: the retrace still locks a gain
    assert index_members() == {}
    assert ledger_check() == []


def test_a_trailing_stop_by_distance_falls_with_the_ask_of_a_short_then_fires(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, side="short", trailing_stop={"distance": "500"})
    trailing = protective(order.position_id, "trailing_stop")
    assert trailing.trigger_price == Decimal("64500")

    price_to("63000")
    trailing.refresh_from_db()
    assert (trailing.best_price, trailing.trigger_price) == (Decimal("63000"), Decimal("63500"))
    assert index_members() == {"ask_above": {f"p:{trailing.pk}"}, "ask_rekey": {f"p:{trailing.pk}"}}

    price_to("63499")
    assert Position.objects.get(pk=order.position_id).status == "open"
    price_to("63500")

    trailing.refresh_from_db()
    assert trailing.status == "fired"
    [fill] = closes(order.position_id)
    assert fill.price == Decimal("63500")
    assert ledger_check() == []


def test_the_take_profit_firing_cancels_its_stop_loss(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="66000")

    price_to("66000")
    price_to("62000")  # the stop-loss was cancelled with the take-profit: nothing more happens

    assert protective(order.position_id, "take_profit").status == "fired"
    assert protective(order.position_id, "stop_loss").status == "cancelled"
    [fill] = closes(order.position_id)
    assert fill.price == Decimal("66000")
    assert index_members() == {}
    assert ledger_check() == []


def test_a_resting_limit_order_fills_when_the_ask_reaches_its_price(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, type="limit", price="63000", stop_loss="61000")
    assert order.status == "open"
    assert index_members() == {"ask_below": {f"o:{order.pk}"}}

    price_to("63001")
    order.refresh_from_db()
    assert order.status == "open"
    price_to("63000")

    order.refresh_from_db()
    assert (order.status, order.avg_fill_price) == ("filled", Decimal("63000"))
    position = Position.objects.get(pk=order.position_id)
    assert position.status == "open"
    stop = protective(position.pk, "stop_loss")
    assert index_members() == {"bid_below": {f"p:{stop.pk}"}}  # the order left, its stop came in
    assert ledger_check() == []


def test_a_limit_close_closes_the_position_when_the_bid_reaches_its_price(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader)
    close = position_close_limit(
        position_id=order.position_id, user=funded_trader, price=Decimal(65000), size=None, rounding=None
    )

    price_to("64999")
    assert Position.objects.get(pk=order.position_id).status == "open"
    price_to("65000")

    close.refresh_from_db()
    assert close.status == "filled"
    assert Position.objects.get(pk=order.position_id).status == "closed"
    assert index_members() == {}
    assert ledger_check() == []


def test_the_sweep_fires_a_stop_the_feed_missed(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000")
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):  # the tick never reaches the engine
        price_to("61900")
    index_forget()
    assert Position.objects.get(pk=order.position_id).status == "open"

    result = tasks.triggers_sweep.apply().get()

    assert result["fired"] == 1
    assert result["reindexed"] == ["BTCUSD"]
    assert protective(order.position_id, "stop_loss").status == "fired"
    [fill] = closes(order.position_id)
    assert fill.price == Decimal("61900")
    assert index_members() == {}
    assert ledger_check() == []


def test_the_sweep_moves_a_trailing_stop_the_feed_missed(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, trailing_stop={"distance": "1000"})
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):
        price_to("70000")

    result = sweep.triggers_sweep()

    trailing = protective(order.position_id, "trailing_stop")
    assert (result.moved, result.fired) == (1, 0)
    assert (trailing.best_price, trailing.trigger_price) == (Decimal("70000"), Decimal("69000"))
    price_to("69000")
    assert Position.objects.get(pk=order.position_id).status == "closed"


def test_the_sweep_rebuilds_a_lost_index_so_that_ticks_fire_again(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")
    index_forget()
    price_to("62000")
    assert Position.objects.get(pk=order.position_id).status == "open"  # no index, no tick trigger

    price_to("63000")
    result = sweep.triggers_sweep()
    assert (result.reindexed, result.fired) == (["BTCUSD"], 0)
    assert set(index_members()) == {"bid_below", "bid_above"}
    assert sweep.triggers_sweep().reindexed == []  # a right index is left alone

    price_to("62000")
    assert Position.objects.get(pk=order.position_id).status == "closed"


def test_the_sweep_never_triggers_on_a_stale_price(funded_trader, price_to, monkeypatch):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000")
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):
        price_to("61000")

    def stale(symbol: str, **_: Any) -> Any:
        raise StalePrice(details={"symbol": symbol})

    monkeypatch.setattr(sweep, "price_for_execution", stale)
    result = sweep.triggers_sweep()

    assert result.skipped == {"BTCUSD": "stale_price"}
    assert protective(order.position_id, "stop_loss").status == "armed"
    assert Position.objects.get(pk=order.position_id).status == "open"


def test_a_tick_from_a_closed_market_fires_nothing(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000")

    engine.trigger_tick_hook(tick("61000", market_open=False))

    fire_pending()
    assert protective(order.position_id, "stop_loss").status == "armed"
    engine.trigger_tick_hook(tick("61000"))
    fire_pending()
    assert protective(order.position_id, "stop_loss").status == "fired"


def test_a_venue_failure_leaves_the_stop_armed_until_a_later_tick(funded_trader, price_to, monkeypatch):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")
    original = PaperVenue.close_position

    def down(self: PaperVenue, **kwargs: Any) -> Any:
        raise ProviderError("paper", "venue down", retryable=True)

    monkeypatch.setattr(PaperVenue, "close_position", down)
    price_to("62000")

    assert protective(order.position_id, "stop_loss").status == "armed"
    assert protective(order.position_id, "take_profit").status == "armed"  # the twin is back too
    assert Position.objects.get(pk=order.position_id).status == "open"
    assert Order.objects.filter(position_id=order.position_id, purpose="close").count() == 0

    monkeypatch.setattr(PaperVenue, "close_position", original)
    price_to("61990")
    assert protective(order.position_id, "stop_loss").status == "fired"
    assert len(closes(order.position_id)) == 1
    assert ledger_check() == []


def test_a_tick_that_crosses_nothing_reads_no_database(funded_trader, price_to, django_assert_num_queries):
    price_to("64000")
    place(funded_trader, stop_loss="62000", take_profit="70000", trailing_stop={"percent": "5"})

    with django_assert_num_queries(0):
        engine.trigger_tick_hook(tick("63000"))


def test_the_hook_never_raises(monkeypatch, caplog):
    def broken(*_: Any, **__: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(index, "redis_connection", broken)

    engine.trigger_tick_hook(tick("61000"))

    assert "triggers not evaluated on a tick of BTCUSD" in caplog.text


# --- PostgreSQL: real concurrency ----------------------------------------------------------------


def at_once(works: list[Callable[[], Any]]) -> list[Any]:
    """Run each of ``works`` in its own thread, released together; returns results or exceptions."""
    barrier = threading.Barrier(len(works))

    def run(work: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test inspects
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(works)) as pool:
        return list(pool.map(run, works))


@requires_postgres
def test_a_stop_seen_by_ticks_and_the_sweep_at_once_fires_once(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="70000")
    with override_settings(PRICE_TICK_HOOKS=PAPER_HOOK_ONLY):
        price_to("61500")  # cached for the sweep; the ticks below carry it to the engine

    results = at_once(
        [
            lambda: sweep.triggers_sweep().fired,
            lambda: engine.tick_evaluate(tick("61500")).queued,
            lambda: engine.tick_evaluate(tick("61500")).queued,
            lambda: firing.protective_fire(
                protective_id=protective(order.position_id, "stop_loss").pk,
                bid=Decimal(61500),
                ask=Decimal(61500),
            ),
        ]
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    swept, queued_a, queued_b, fired_directly = results
    assert queued_a + queued_b <= 1, results  # two ticks enqueue the crossing once
    assert int(swept) + int(fired_directly) + fire_pending() == 1, results
    assert protective(order.position_id, "stop_loss").status == "fired"
    assert protective(order.position_id, "take_profit").status == "cancelled"
    assert len(closes(order.position_id)) == 1
    assert Order.objects.filter(position_id=order.position_id, purpose="close").count() == 1
    assert Position.objects.get(pk=order.position_id).status == "closed"
    assert ledger_check() == []


@requires_postgres
def test_a_take_profit_and_its_stop_crossed_at_once_close_the_position_once(funded_trader, price_to):
    price_to("64000")
    order = place(funded_trader, stop_loss="62000", take_profit="66000")
    stop = protective(order.position_id, "stop_loss")
    target = protective(order.position_id, "take_profit")

    results = at_once(
        [
            lambda: firing.protective_fire(protective_id=stop.pk, bid=Decimal(61000), ask=Decimal(61000)),
            lambda: firing.protective_fire(protective_id=target.pk, bid=Decimal(67000), ask=Decimal(67000)),
        ]
    )

    assert sorted(results) == [False, True], results
    assert {protective(order.position_id, k).status for k in ("stop_loss", "take_profit")} == {
        "fired",
        "cancelled",
    }
    assert len(closes(order.position_id)) == 1
    assert ledger_check() == []
