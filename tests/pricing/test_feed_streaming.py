"""The price feed streams Lighter over its WebSocket and polls the venues that cannot stream.

Lighter is served by two local fakes: its REST API (pytest-httpserver, replaying the
contract fixtures) and its ``/stream`` WebSocket. Forex goes to a counting venue that can
only be polled. What is checked is what users get: the cached prices (and who they came
from), the requests the REST fake received and the connections the WebSocket fake saw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pricing.feed import PriceFeed
from pricing.models import TradingPair
from pricing.services.prices import PriceTick, price_cache_key, price_get
from providers import registry
from tests.contract.lighter.fake_stream import FakeLighterStream, running_fake, wait_until
from tests.pricing.factories import TradingPairFactory
from tests.pricing.venues import BOOKS, VenueBook

pytestmark = pytest.mark.django_db(transaction=True)  # the feed's threads read the pairs

FIXTURES = Path(__file__).resolve().parents[1] / "contract" / "lighter" / "fixtures"
ETH, BTC = 0, 1
ROUTING = {"crypto": ["lighter"], "forex": ["beta"], "indices": ["beta"], "commodities": ["beta"]}
# What Lighter's REST fake answers (order_book_orders_0.json): the feed polled it.
ETH_POLLED = (Decimal("3024.12"), Decimal("3024.66"))


def _clean(redis: Any) -> None:
    for pattern in ("marqetfi:price:*", "marqetfi:breaker:lighter*", "marqetfi:breaker:beta*"):
        for key in redis.scan_iter(pattern):
            redis.delete(key)


def serve_lighter_rest(server: HTTPServer) -> None:
    server.expect_request("/api/v1/orderBookDetails").respond_with_data(
        (FIXTURES / "order_book_details.json").read_text(), content_type="application/json"
    )

    def book(request: Request) -> Response:
        body = (FIXTURES / f"order_book_orders_{request.args['market_id']}.json").read_text()
        return Response(body, content_type="application/json")

    server.expect_request("/api/v1/orderBookOrders").respond_with_handler(book)


@pytest.fixture
def fake() -> Iterator[FakeLighterStream]:
    with running_fake() as server:
        server.book(ETH, bids={"3100.10": "2.0"}, asks={"3100.50": "1.5", "3101.00": "3"})
        server.book(BTC, bids={"97000.0": "0.5"}, asks={"97001.5": "0.2"})
        yield server


@pytest.fixture
def beta() -> Iterator[VenueBook]:
    book = VenueBook()
    book.quote("EURUSD", "1.0801", "1.0803")
    BOOKS.clear()
    BOOKS["beta"] = book
    yield book
    BOOKS.clear()


@pytest.fixture
def venues(
    httpserver: HTTPServer, fake: FakeLighterStream, beta: VenueBook, redis_conn: Any
) -> Iterator[None]:
    """Lighter (REST and WebSocket fakes, short reconnect waits) for crypto, beta for the rest."""
    serve_lighter_rest(httpserver)
    catalogue = {name: entry for name, entry in settings.PROVIDERS.items() if entry["kind"] != "venue"}
    catalogue["lighter"] = {
        **settings.PROVIDERS["lighter"],
        "options": {
            "base_url": httpserver.url_for("/").rstrip("/"),
            "ws_url": fake.url,
            "timeout": "2",
            "backoff_seconds": "0.001",
            "stream_backoff_seconds": "0.05",
            "stream_max_backoff_seconds": "0.2",
        },
    }
    catalogue["beta"] = {
        "kind": "venue",
        "class": "tests.pricing.venues.CountingVenue",
        "options": {"book": "beta"},
        "secret_fields": [],
    }
    _clean(redis_conn)
    with override_settings(PROVIDERS=catalogue, ROUTING_DEFAULTS=ROUTING):
        registry.reset_cache()
        yield
    registry.reset_cache()
    _clean(redis_conn)


@pytest.fixture
def pairs(venues: None) -> None:
    TradingPairFactory(symbol="ETHUSD")
    TradingPairFactory(symbol="EURUSD", category="forex")


@pytest.fixture
def run_feed() -> Iterator[Callable[[], PriceFeed]]:
    """Starts ``run_forever`` in a thread (rounds every 0.1 s); stopped after the test."""
    running: list[tuple[PriceFeed, threading.Thread]] = []

    def start() -> PriceFeed:
        feed = PriceFeed(interval=0.1, stream_join_seconds=2)
        thread = threading.Thread(target=feed.run_forever, daemon=True)
        thread.start()
        running.append((feed, thread))
        return feed

    yield start
    for feed, thread in running:
        feed.stop_event.set()
        thread.join(3)


def cached(symbol: str) -> PriceTick | None:
    """The cached price as the price service stores it (reading it never fetches)."""
    from django_redis import get_redis_connection

    raw = get_redis_connection("default").get(price_cache_key(symbol))
    return None if raw is None else PriceTick.from_json(raw)


def shows(symbol: str, bid: str, ask: str) -> bool:
    tick = cached(symbol)
    return tick is not None and (tick.bid, tick.ask) == (Decimal(bid), Decimal(ask))


def rounds_pass(feed: PriceFeed, count: int) -> None:
    """Wait for ``count`` more rounds to complete, so that any round under way has ended."""
    start = feed.rounds
    wait_until(lambda: feed.rounds >= start + count, what=f"{count} rounds")


def book_reads(server: HTTPServer) -> int:
    return sum(1 for request, _ in server.log if request.path == "/api/v1/orderBookOrders")


def test_the_feed_streams_lighter_books_into_the_prices_users_get(pairs, run_feed, fake, httpserver):
    run_feed()

    wait_until(lambda: shows("ETHUSD", "3100.10", "3100.50"), what="the streamed snapshot cached")
    price = price_get("ETHUSD")
    assert (price.provider, price.bid, price.ask, price.market) == (
        "lighter",
        Decimal("3100.10"),
        Decimal("3100.50"),
        "open",
    )

    fake.update(ETH, bids={"3100.30": "1"}, asks={"3100.50": "0"})
    wait_until(lambda: shows("ETHUSD", "3100.30", "3101.00"), what="the diff's best bid and ask cached")
    assert price_get("ETHUSD").mid == Decimal("3100.65")


def test_a_live_stream_replaces_polling_while_other_venues_keep_being_polled(
    pairs, run_feed, fake, httpserver, beta
):
    feed = run_feed()
    wait_until(lambda: shows("ETHUSD", "3100.10", "3100.50"), what="the stream live")
    rounds_pass(feed, 2)
    reads, beta_calls = book_reads(httpserver), len(beta.price_calls)

    rounds_pass(feed, 3)

    assert book_reads(httpserver) == reads, "no REST order book reads while the stream is live"
    assert len(beta.price_calls) >= beta_calls + 3, "beta is polled every round"
    eurusd = cached("EURUSD")
    assert eurusd is not None and eurusd.provider == "beta"
    assert all(call == ["EURUSD"] for call in beta.price_calls)


def test_while_the_stream_is_down_the_feed_polls_lighter_then_streams_again(
    pairs, run_feed, fake, httpserver
):
    fake.accepting = False
    feed = run_feed()

    wait_until(lambda: book_reads(httpserver) >= 2, what="Lighter polled over REST")
    tick = cached("ETHUSD")
    assert tick is not None and (tick.provider, tick.bid, tick.ask) == ("lighter", *ETH_POLLED)
    assert fake.refused >= 1

    fake.accepting = True
    wait_until(lambda: shows("ETHUSD", "3100.10", "3100.50"), what="streamed prices once it is back")
    rounds_pass(feed, 2)
    reads = book_reads(httpserver)
    fake.update(ETH, bids={"3100.20": "1"})
    wait_until(lambda: shows("ETHUSD", "3100.20", "3100.50"), what="diffs flowing")
    rounds_pass(feed, 2)
    assert book_reads(httpserver) == reads, "polling stopped once the stream was live"


def test_after_a_disconnect_the_stream_resubscribes_and_prices_continue(pairs, run_feed, fake):
    run_feed()
    wait_until(lambda: shows("ETHUSD", "3100.10", "3100.50"), what="the stream live")

    fake.book(ETH, bids={"3110.00": "1"}, asks={"3110.40": "1"})
    fake.disconnect()

    wait_until(lambda: fake.subscribed(1, "order_book/0"), what="a resubscription")
    wait_until(lambda: shows("ETHUSD", "3110.00", "3110.40"), what="prices from the new connection")
    fake.update(ETH, asks={"3110.20": "2"})
    wait_until(lambda: shows("ETHUSD", "3110.00", "3110.20"), what="diffs after the reconnection")


def test_the_stream_follows_the_catalogue(pairs, run_feed, fake):
    run_feed()
    wait_until(lambda: fake.subscribed(0, "order_book/0"), what="the first stream")

    TradingPairFactory(symbol="BTCUSD")
    wait_until(lambda: fake.subscribed(1, "order_book/1"), what="a stream with BTC added")
    wait_until(lambda: shows("BTCUSD", "97000.0", "97001.5"), what="BTC streamed")
    # The new connection subscribes to its books one by one (and BTC's first price may come
    # from the REST snapshot), so ETH's subscription can land just after BTC shows.
    wait_until(lambda: fake.subscribed(1, "order_book/0"), what="ETH on the new stream too")

    TradingPair.objects.filter(symbol="ETHUSD").update(active=False)
    wait_until(lambda: fake.subscribed(2, "order_book/1"), what="a stream without ETH")
    assert not fake.subscribed(2, "order_book/0")
    wait_until(lambda: fake.open_connections() == 1, what="the old connections closed")


def test_stopping_the_feed_joins_its_stream_and_closes_the_socket(pairs, fake):
    feed = PriceFeed(interval=0.1, stream_join_seconds=2)
    thread = threading.Thread(target=feed.run_forever, daemon=True)
    thread.start()
    wait_until(lambda: shows("ETHUSD", "3100.10", "3100.50"), what="the stream live")

    feed.stop_event.set()
    thread.join(2)

    assert not thread.is_alive()
    assert feed.streams == {}
    assert not [t for t in threading.enumerate() if t.name.startswith("feed-stream-")]
    wait_until(lambda: fake.open_connections() == 0, what="the socket closed")


def test_once_polls_every_venue_and_opens_no_stream(pairs, fake, httpserver, capsys):
    call_command("pricefeed", "--once")

    assert "2 ticks ingested" in capsys.readouterr().out
    tick = cached("ETHUSD")
    assert tick is not None and (tick.provider, tick.bid, tick.ask) == ("lighter", *ETH_POLLED)
    assert book_reads(httpserver) == 1
    assert fake.connections == []
