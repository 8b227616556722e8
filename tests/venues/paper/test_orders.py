"""Orders and positions on the paper venue: fills, resting limits, idempotency, closes, rejections."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import requires_postgres
from providers.base import OrderType, Side, VenueOrderRequest
from providers.errors import ProviderError
from providers.models import PaperOrder, PaperPosition
from providers.venues.paper.book import paper_match_resting_orders
from tests.venues.paper.conftest import make_venue, pin

pytestmark = pytest.mark.django_db

ACCOUNT = "paper:trader-1"


def request(
    client_order_id: str = "o-1",
    *,
    symbol: str = "BTCUSD",
    side: Side = Side.LONG,
    type: OrderType = OrderType.MARKET,
    collateral: str = "100",
    leverage: str = "10",
    price: str | None = None,
    account_ref: str = ACCOUNT,
) -> VenueOrderRequest:
    return VenueOrderRequest(
        account_ref=account_ref,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        type=type,
        collateral=Decimal(collateral),
        leverage=Decimal(leverage),
        price=None if price is None else Decimal(price),
    )


@pytest.fixture
def btc(venue):
    """BTC pinned at 64000.0: bid 63993.6, ask 64006.4 (2 bps spread), 1 bp slippage."""
    pin(venue, BTCUSD="64000.0")
    return venue


def test_a_long_market_order_fills_at_the_ask_plus_slippage(btc):
    order = btc.place_order(order=request())
    assert order.status == "filled"
    assert order.avg_fill_price == Decimal("64012.9")  # 64006.4 x 1.0001 = 64012.80064, up to the tick
    assert order.filled_size == Decimal("0.0156")  # 1000 / 64012.9 = 0.015621.., down to the step
    assert order.reject_reason is None
    [position] = btc.positions(account_ref=ACCOUNT)
    assert (position.symbol, position.side, position.size) == ("BTCUSD", Side.LONG, Decimal("0.0156"))
    assert position.entry_price == Decimal("64012.9")
    assert position.collateral == Decimal("100")
    assert position.leverage == Decimal("9.99")  # what 0.0156 BTC at entry is worth over the collateral


def test_a_short_market_order_fills_at_the_bid_minus_slippage(btc):
    order = btc.place_order(order=request(side=Side.SHORT))
    assert order.avg_fill_price == Decimal("63987.2")  # 63993.6 x 0.9999 = 63987.20064, down to the tick
    assert order.filled_size == Decimal("0.0156")


def test_forex_fills_respect_the_pair_s_tick_and_step(venue):
    pin(venue, EURUSD="1.10000")
    long = venue.place_order(order=request("eur-long", symbol="EURUSD"))
    short = venue.place_order(order=request("eur-short", symbol="EURUSD", side=Side.SHORT))
    assert (long.avg_fill_price, long.filled_size) == (Decimal("1.10023"), Decimal("908"))
    assert (short.avg_fill_price, short.filled_size) == (Decimal("1.09978"), Decimal("909"))


def test_no_slippage_fills_at_the_touch(clock):
    venue = make_venue(clock, slippage="0")
    pin(venue, BTCUSD="64000.0")
    assert venue.place_order(order=request()).avg_fill_price == Decimal("64006.4")


def test_a_limit_order_rests_until_a_price_crosses_it_then_fills_at_its_limit(btc):
    placed = btc.place_order(order=request(type=OrderType.LIMIT, price="63000"))
    assert placed.status == "open" and placed.filled_size == 0
    assert btc.positions(account_ref=ACCOUNT) == []

    assert paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("63001"), ask=Decimal("63000.1")) == []
    assert btc.get_order(account_ref=ACCOUNT, client_order_id="o-1").status == "open"

    [filled] = paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("62990"), ask=Decimal("63000"))
    assert filled.venue_order_id == placed.venue_order_id
    assert (filled.status, filled.avg_fill_price) == ("filled", Decimal("63000"))
    assert filled.filled_size == Decimal("0.0158")  # 1000 / 63000, down to the step
    [position] = btc.positions(account_ref=ACCOUNT)
    assert position.entry_price == Decimal("63000") and position.size == Decimal("0.0158")
    assert paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("62000"), ask=Decimal("62001")) == []


def test_a_short_limit_fills_when_the_bid_reaches_it(btc):
    btc.place_order(order=request(side=Side.SHORT, type=OrderType.LIMIT, price="65000"))
    assert paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("64999.9"), ask=Decimal("65010")) == []
    [filled] = paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("65000"), ask=Decimal("65010"))
    assert filled.avg_fill_price == Decimal("65000")
    assert btc.positions(account_ref=ACCOUNT)[0].side == Side.SHORT


def test_a_tick_of_another_symbol_fills_nothing(btc):
    btc.place_order(order=request(type=OrderType.LIMIT, price="63000"))
    assert paper_match_resting_orders(symbol="ETHUSD", bid=Decimal("1"), ask=Decimal("1")) == []


def test_a_limit_already_through_the_market_fills_at_once_never_worse_than_its_limit(btc):
    better = btc.place_order(order=request("through", type=OrderType.LIMIT, price="65000"))
    assert (better.status, better.avg_fill_price) == ("filled", Decimal("64012.9"))
    capped = btc.place_order(order=request("at-limit", type=OrderType.LIMIT, price="64010"))
    assert (capped.status, capped.avg_fill_price) == ("filled", Decimal("64010"))


def test_a_repeated_client_order_id_returns_the_first_order_and_fills_once(btc):
    first = btc.place_order(order=request("same-id"))
    again = btc.place_order(order=request("same-id", collateral="500", side=Side.SHORT))
    assert again == first
    assert PaperOrder.objects.count() == 1
    [position] = btc.positions(account_ref=ACCOUNT)
    assert position.size == first.filled_size
    assert btc.get_order(account_ref=ACCOUNT, client_order_id="same-id") == first


def test_a_repeat_on_the_same_side_leaves_the_position_as_the_first_order_made_it(btc):
    first = btc.place_order(order=request("same-side"))
    [before] = btc.positions(account_ref=ACCOUNT)
    again = btc.place_order(order=request("same-side", collateral="500"))
    assert again == first
    assert PaperOrder.objects.count() == 1
    assert btc.positions(account_ref=ACCOUNT) == [before]


def test_the_same_client_order_id_on_another_account_is_another_order(btc):
    first = btc.place_order(order=request("shared"))
    other = btc.place_order(order=request("shared", account_ref="paper:trader-2"))
    assert other.venue_order_id != first.venue_order_id
    assert len(btc.positions(account_ref="paper:trader-2")) == 1


def test_get_order_of_an_unknown_client_id_is_none(venue):
    assert venue.get_order(account_ref=ACCOUNT, client_order_id="never-sent") is None


def test_adding_to_a_position_averages_its_entry(btc):
    first = btc.place_order(order=request("a"))  # 0.0156 at 64012.9
    pin(btc, BTCUSD="66000.0")
    second = btc.place_order(order=request("b"))  # 0.0151 at 66013.3
    assert (second.filled_size, second.avg_fill_price) == (Decimal("0.0151"), Decimal("66013.3"))
    [position] = btc.positions(account_ref=ACCOUNT)
    assert position.size == Decimal("0.0307")
    expected = (Decimal("0.0156") * Decimal("64012.9") + Decimal("0.0151") * Decimal("66013.3")) / Decimal(
        "0.0307"
    )
    assert first.avg_fill_price is not None
    assert abs(position.entry_price - expected) < Decimal("0.00001")
    assert position.collateral == Decimal("200")


def test_long_and_short_of_one_pair_are_separate_positions(btc):
    btc.place_order(order=request("long"))
    btc.place_order(order=request("short", side=Side.SHORT))
    positions = btc.positions(account_ref=ACCOUNT)
    assert sorted(p.side for p in positions) == [Side.LONG, Side.SHORT]


def test_a_partial_close_releases_collateral_in_proportion_and_books_the_pnl(btc):
    btc.place_order(order=request())  # long 0.0156 at 64012.9, collateral 100
    [position] = btc.positions(account_ref=ACCOUNT)
    pin(btc, BTCUSD="65000.0")  # bid 64993.5, sell at 64993.5 x 0.9999 = 64987.00065 -> 64987.0
    close = btc.close_position(
        account_ref=ACCOUNT, venue_position_id=position.venue_position_id, size=Decimal("0.0056")
    )
    assert (close.status, close.filled_size, close.avg_fill_price) == (
        "filled",
        Decimal("0.0056"),
        Decimal("64987.0"),
    )
    [after] = btc.positions(account_ref=ACCOUNT)
    assert after.venue_position_id == position.venue_position_id
    assert after.size == Decimal("0.0100")
    assert after.entry_price == position.entry_price
    assert after.collateral == Decimal("64.102565")  # 100 - 100 x 0.0056 / 0.0156 (rounded down)
    assert Decimal(after.extra["realized_pnl"]) == Decimal("5.45496")  # (64987.0 - 64012.9) x 0.0056


def test_a_full_close_removes_the_position(btc):
    btc.place_order(order=request(side=Side.SHORT))  # short 0.0156 at 63987.2
    [position] = btc.positions(account_ref=ACCOUNT)
    close = btc.close_position(account_ref=ACCOUNT, venue_position_id=position.venue_position_id)
    assert (close.status, close.filled_size) == ("filled", Decimal("0.0156"))
    assert close.avg_fill_price == Decimal("64012.9")  # buying back at the ask plus slippage
    assert btc.positions(account_ref=ACCOUNT) == []
    row = PaperPosition.objects.get()
    assert row.status == "closed" and row.size == 0 and row.collateral == 0
    assert row.realized_pnl == Decimal("-0.40092")  # (63987.2 - 64012.9) x 0.0156


def test_closing_more_than_the_position_closes_all_of_it(btc):
    btc.place_order(order=request())
    [position] = btc.positions(account_ref=ACCOUNT)
    close = btc.close_position(
        account_ref=ACCOUNT, venue_position_id=position.venue_position_id, size=Decimal("9")
    )
    assert close.filled_size == Decimal("0.0156")
    assert btc.positions(account_ref=ACCOUNT) == []


def test_closing_a_position_that_is_not_the_account_s_is_rejected(btc):
    btc.place_order(order=request())
    [position] = btc.positions(account_ref=ACCOUNT)
    for account, position_id, size, reason in [
        ("paper:someone-else", position.venue_position_id, None, "position_not_found"),
        (ACCOUNT, "not-a-uuid", None, "position_not_found"),
        (ACCOUNT, position.venue_position_id, Decimal("0"), "invalid_size"),
        (ACCOUNT, position.venue_position_id, Decimal("0.00001"), "size_below_minimum"),
    ]:
        close = btc.close_position(account_ref=account, venue_position_id=position_id, size=size)
        assert (close.status, close.reject_reason) == ("rejected", reason)
    assert btc.positions(account_ref=ACCOUNT)[0].size == Decimal("0.0156")


def test_a_cancelled_limit_order_never_fills(btc):
    placed = btc.place_order(order=request(type=OrderType.LIMIT, price="63000"))
    cancelled = btc.cancel_order(account_ref=ACCOUNT, venue_order_id=placed.venue_order_id)
    assert cancelled.status == "cancelled"
    assert paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("60000"), ask=Decimal("60001")) == []
    assert btc.cancel_order(account_ref=ACCOUNT, venue_order_id=placed.venue_order_id).status == "cancelled"
    assert btc.positions(account_ref=ACCOUNT) == []


def test_open_orders_are_the_account_s_resting_limits_only(btc):
    first = btc.place_order(order=request("rest-1", type=OrderType.LIMIT, price="63000"))
    second = btc.place_order(order=request("rest-2", type=OrderType.LIMIT, price="62000"))
    btc.place_order(order=request("market-1"))
    cancelled = btc.place_order(order=request("rest-3", type=OrderType.LIMIT, price="61000"))
    btc.cancel_order(account_ref=ACCOUNT, venue_order_id=cancelled.venue_order_id)
    btc.place_order(order=request("other", type=OrderType.LIMIT, price="63000", account_ref="paper:other"))

    resting = btc.open_orders(account_ref=ACCOUNT)

    assert resting == [first, second]
    assert [(o.client_order_id, o.status) for o in resting] == [("rest-1", "open"), ("rest-2", "open")]
    paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("62990"), ask=Decimal("63000"))
    assert btc.open_orders(account_ref=ACCOUNT) == [second]


def test_cancelling_a_filled_order_returns_it_unchanged(btc):
    filled = btc.place_order(order=request())
    assert btc.cancel_order(account_ref=ACCOUNT, venue_order_id=filled.venue_order_id) == filled


def test_cancelling_an_order_the_account_does_not_have_is_a_404(btc):
    placed = btc.place_order(order=request(type=OrderType.LIMIT, price="63000"))
    for account, order_id in [("paper:other", placed.venue_order_id), (ACCOUNT, "junk")]:
        with pytest.raises(ProviderError) as caught:
            btc.cancel_order(account_ref=account, venue_order_id=order_id)
        assert caught.value.status_code == 404
    assert btc.get_order(account_ref=ACCOUNT, client_order_id="o-1").status == "open"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"symbol": "NOPEUSD"}, "unknown_symbol"),
        ({"collateral": "0"}, "invalid_collateral"),
        ({"collateral": "-5"}, "invalid_collateral"),
        ({"collateral": "4.99"}, "collateral_below_minimum"),
        ({"collateral": "100.0000001"}, "invalid_collateral"),
        ({"leverage": "10.555"}, "invalid_leverage"),
        ({"leverage": "0.5"}, "invalid_leverage"),
        ({"leverage": "51"}, "leverage_limit_exceeded"),
        ({"type": OrderType.LIMIT}, "invalid_price"),
        ({"type": OrderType.LIMIT, "price": "0"}, "invalid_price"),
        ({"type": OrderType.LIMIT, "price": "63000.05"}, "price_off_tick"),
        ({"collateral": "5", "leverage": "1"}, "size_below_minimum"),
        ({"side": "sideways"}, "invalid_order"),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason_not_raised(btc, changes, reason):
    order = btc.place_order(order=request("bad", **changes))
    assert (order.status, order.reject_reason, order.filled_size) == ("rejected", reason, 0)
    assert btc.get_order(account_ref=ACCOUNT, client_order_id="bad") == order
    assert btc.place_order(order=request("bad")) == order  # the first answer stands
    assert btc.positions(account_ref=ACCOUNT) == []


def test_a_whale_sized_order_is_accepted(btc):
    order = btc.place_order(order=request("whale", collateral="25000000000.5", leverage="1.5"))
    assert order.status == "filled"
    assert order.filled_size == Decimal("585819.4207")  # 37500000000.75 / 64012.9, down to the step


def test_an_order_whose_ids_are_too_long_to_keep_is_rejected_without_a_trace(btc):
    order = btc.place_order(order=request("x" * 129))
    assert (order.status, order.reject_reason, order.venue_order_id) == ("rejected", "invalid_order", "")
    assert not PaperOrder.objects.exists()


def test_a_nan_collateral_is_rejected_and_stored(btc):
    order = btc.place_order(order=request("nan", collateral="NaN"))
    assert (order.status, order.reject_reason) == ("rejected", "invalid_collateral")
    assert PaperOrder.objects.get(client_order_id="nan").collateral == 0


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_two_ticks_racing_fill_a_resting_order_once(btc):
    btc.place_order(order=request(type=OrderType.LIMIT, price="63000"))
    results: list[int] = []
    barrier = threading.Barrier(2)

    def tick() -> None:
        barrier.wait()
        try:
            results.append(
                len(paper_match_resting_orders(symbol="BTCUSD", bid=Decimal("62900"), ask=Decimal("62950")))
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    [position] = btc.positions(account_ref=ACCOUNT)
    assert position.size == Decimal("0.0158")


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_fills_on_one_side_make_one_position(btc):
    barrier = threading.Barrier(4)

    def place(n: int) -> None:
        barrier.wait()
        try:
            btc.place_order(order=request(f"c-{n}"))
        finally:
            connection.close()

    threads = [threading.Thread(target=place, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [position] = btc.positions(account_ref=ACCOUNT)
    assert position.size == Decimal("0.0624") and position.collateral == Decimal("400")


def test_a_repeat_of_an_order_that_added_to_a_position_returns_it_and_changes_nothing(btc):
    btc.place_order(order=request("open"))
    added = btc.place_order(order=request("add"))
    pin(btc, BTCUSD="66000.0")
    btc.place_order(order=request("later"))  # the position moved since "add"
    [before] = btc.positions(account_ref=ACCOUNT)
    rows_before = list(PaperOrder.objects.order_by("created_at").values())

    again = btc.place_order(order=request("add", collateral="500"))

    assert again == added
    assert btc.positions(account_ref=ACCOUNT) == [before]
    assert list(PaperOrder.objects.order_by("created_at").values()) == rows_before


def test_a_repeat_inside_the_caller_s_transaction_leaves_it_usable(btc):
    """The trading service places paper orders in its own transaction: a repeat must not abort
    it (no error is raised and caught inside it)."""
    with transaction.atomic():
        first = btc.place_order(order=request("open"))
        added = btc.place_order(order=request("add"))
        assert btc.place_order(order=request("add", collateral="500")) == added
        assert btc.place_order(order=request("open", collateral="500")) == first
        [position] = btc.positions(account_ref=ACCOUNT)  # the transaction still answers
    assert position.size == Decimal("0.0312") and position.collateral == Decimal("200")
    assert PaperOrder.objects.count() == 2


@requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("position_open", [True, False], ids=["adding", "opening"])
def test_concurrent_repeats_of_a_client_id_fill_once(btc, position_open):
    if position_open:
        btc.place_order(order=request("open"))
    answers: list[object] = []
    barrier = threading.Barrier(4)

    def place() -> None:
        barrier.wait()
        try:
            answers.append(btc.place_order(order=request("same")))
        finally:
            connection.close()

    threads = [threading.Thread(target=place) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(answer == answers[0] for answer in answers)
    assert PaperOrder.objects.filter(client_order_id="same").count() == 1
    [position] = btc.positions(account_ref=ACCOUNT)
    fills = 2 if position_open else 1
    assert position.size == Decimal("0.0156") * fills and position.collateral == Decimal(100) * fills


@requires_postgres
def test_adding_to_a_position_costs_three_statements_and_no_savepoint(btc):
    """As the trading service calls it, in its transaction: the position locked, the order
    inserted filled, the position moved. A repeat reads the first order instead of moving it."""
    btc.place_order(order=request("open"))
    with transaction.atomic():
        with CaptureQueriesContext(connection) as adding:
            btc.place_order(order=request("add"))
        with CaptureQueriesContext(connection) as repeat:
            btc.place_order(order=request("add"))
        with CaptureQueriesContext(connection) as resting:
            btc.place_order(order=request("rest", type=OrderType.LIMIT, price="60000"))
    verbs = [query["sql"].split()[0] for query in adding.captured_queries]
    assert verbs == ["SELECT", "INSERT", "UPDATE"]
    assert "FOR UPDATE" in adding.captured_queries[0]["sql"]
    assert "ON CONFLICT DO NOTHING" in adding.captured_queries[1]["sql"]
    assert [query["sql"].split()[0] for query in repeat.captured_queries] == ["SELECT", "INSERT", "SELECT"]
    assert [query["sql"].split()[0] for query in resting.captured_queries] == ["INSERT"]
