"""LighterVenue.stream_prices against a local server speaking Lighter's WebSocket protocol.

The market table comes from the REST fake (``orderBookDetails``), the books from the
WebSocket fake; what is checked is what the stream hands its consumer (quotes, live
symbols) and what the server receives (subscriptions, pongs, reconnections).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from providers.base import PriceStreaming, Quote
from providers.venues.lighter.adapter import LighterVenue
from providers.venues.lighter.stream import StreamTimings, stream_url_for
from tests.contract.lighter.fake_stream import FakeLighterStream, running_fake, wait_until
from tests.contract.lighter.test_lighter_venue import serve_markets

ETH, BTC = 0, 1


class Consumer:
    """Runs a venue's stream in a thread and keeps what it hands over."""

    def __init__(self, venue: LighterVenue, symbols: list[str]) -> None:
        self.quotes: list[Quote] = []
        self.live: list[frozenset[str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=venue.stream_prices,
            kwargs={
                "symbols": symbols,
                "on_quote": self.quotes.append,
                "stop": self.stop,
                "on_live": self.live.append,
            },
            daemon=True,
        )
        self.thread.start()

    def latest(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        quote = next((q for q in reversed(self.quotes) if q.symbol == symbol), None)
        return None if quote is None else (quote.bid, quote.ask)

    def shows(self, symbol: str, bid: str, ask: str) -> bool:
        return self.latest(symbol) == (Decimal(bid), Decimal(ask))

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(2)
        assert not self.thread.is_alive(), "the stream returns once stopped"


@pytest.fixture
def fake() -> Iterator[FakeLighterStream]:
    with running_fake() as server:
        server.book(ETH, bids={"3100.10": "2.0", "3099.00": "1.0"}, asks={"3100.50": "1.5", "3101.00": "3.0"})
        server.book(BTC, bids={"97000.0": "0.5"}, asks={"97001.5": "0.2"})
        yield server


@pytest.fixture
def make_venue(httpserver: HTTPServer, fake: FakeLighterStream) -> Iterator[Any]:
    serve_markets(httpserver)
    built: list[LighterVenue] = []

    def make(**options: str) -> LighterVenue:
        options = {"stream_backoff_seconds": "0.05", "stream_max_backoff_seconds": "0.2"} | options
        venue = LighterVenue(
            base_url=httpserver.url_for("/").rstrip("/"),
            ws_url=fake.url,
            timeout="2",
            backoff_seconds="0.001",
            **options,
        )
        built.append(venue)
        return venue

    yield make
    for venue in built:
        venue.close()


@pytest.fixture
def venue(make_venue: Any) -> LighterVenue:
    return make_venue()


@pytest.fixture
def consumers() -> Iterator[list[Consumer]]:
    started: list[Consumer] = []
    yield started
    for consumer in started:
        consumer.halt()


@pytest.fixture
def stream(venue: LighterVenue, consumers: list[Consumer]) -> Any:
    def start(symbols: list[str]) -> Consumer:
        consumer = Consumer(venue, symbols)
        consumers.append(consumer)
        return consumer

    return start


def test_lighter_can_stream_and_derives_its_websocket_from_the_rest_url():
    assert isinstance(LighterVenue(), PriceStreaming)
    assert stream_url_for("https://mainnet.zklighter.elliot.ai/") == (
        "wss://mainnet.zklighter.elliot.ai/stream?readonly=true"
    )
    assert stream_url_for("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/stream?readonly=true"


def test_stream_subscribes_to_each_market_and_quotes_the_best_of_its_snapshot(stream, fake):
    consumer = stream(["ETHUSD", "btcusd"])

    wait_until(lambda: consumer.shows("ETHUSD", "3100.10", "3100.50"), what="the ETH snapshot's best")
    wait_until(lambda: consumer.shows("BTCUSD", "97000.0", "97001.5"), what="the BTC snapshot's best")
    assert sorted(m["channel"] for m in fake.messages("subscribe")) == ["order_book/0", "order_book/1"]
    assert consumer.live[-1] == {"ETHUSD", "BTCUSD"}
    assert all(q.ts.tzinfo is not None and q.market_open for q in consumer.quotes)


def test_diffs_move_the_best_prices_and_a_zero_size_deletes_a_level(stream, fake):
    consumer = stream(["ETHUSD"])
    wait_until(lambda: consumer.shows("ETHUSD", "3100.10", "3100.50"), what="the snapshot")

    fake.update(ETH, bids={"3100.20": "0.7"})
    wait_until(lambda: consumer.shows("ETHUSD", "3100.20", "3100.50"), what="a better bid")

    fake.update(ETH, asks={"3100.50": "0"})
    wait_until(lambda: consumer.shows("ETHUSD", "3100.20", "3101.00"), what="the best ask deleted")

    fake.update(ETH, bids={"3100.20": "0", "3100.10": "0"}, asks={"3100.90": "4"})
    wait_until(lambda: consumer.shows("ETHUSD", "3099.00", "3100.90"), what="both sides moved")


def test_an_unchanged_book_is_quoted_again_while_the_connection_is_up(make_venue, fake, consumers):
    consumer = Consumer(make_venue(stream_refresh_seconds="0.1"), ["ETHUSD"])
    consumers.append(consumer)

    wait_until(lambda: len(consumer.quotes) >= 3, what="restamped quotes")
    first, last = consumer.quotes[0], consumer.quotes[-1]
    assert (last.bid, last.ask) == (first.bid, first.ask) and last.ts > first.ts


def test_a_server_ping_is_answered_with_a_pong(stream, fake):
    consumer = stream(["ETHUSD"])
    wait_until(lambda: consumer.latest("ETHUSD"), what="the snapshot")

    fake.send({"type": "ping"})

    wait_until(lambda: fake.messages("pong"), what="a pong")
    assert fake.messages("pong") == [{"type": "pong"}]


def test_after_a_disconnect_the_stream_reconnects_resubscribes_and_quotes_continue(stream, fake):
    consumer = stream(["ETHUSD"])
    wait_until(lambda: consumer.shows("ETHUSD", "3100.10", "3100.50"), what="the snapshot")

    fake.disconnect()
    fake.book(ETH, bids={"3105.00": "1"}, asks={"3105.40": "1"})  # the market moved meanwhile

    wait_until(lambda: fake.subscribed(1, "order_book/0"), what="a resubscription on a new connection")
    wait_until(lambda: consumer.shows("ETHUSD", "3105.00", "3105.40"), what="the new snapshot")
    fake.update(ETH, asks={"3105.20": "2"})
    wait_until(lambda: consumer.shows("ETHUSD", "3105.00", "3105.20"), what="diffs after reconnecting")
    assert frozenset() in consumer.live, "live symbols are withdrawn while disconnected"
    assert consumer.live[-1] == {"ETHUSD"}


def test_an_error_frame_is_logged_and_the_stream_reconnects(stream, fake, caplog):
    consumer = stream(["ETHUSD"])
    wait_until(lambda: consumer.latest("ETHUSD"), what="the snapshot")

    with caplog.at_level(logging.WARNING, logger="providers.venues.lighter.stream"):
        fake.send({"type": "error", "code": 20001, "message": "internal error"})
        wait_until(lambda: fake.subscribed(1, "order_book/0"), what="a new connection")

    assert any("internal error" in record.getMessage() for record in caplog.records)
    fake.update(ETH, bids={"3100.30": "1"})
    wait_until(lambda: consumer.shows("ETHUSD", "3100.30", "3100.50"), what="quotes after the error")


def test_a_shutdown_frame_makes_the_stream_reconnect(stream, fake):
    consumer = stream(["ETHUSD"])
    wait_until(lambda: consumer.latest("ETHUSD"), what="the snapshot")

    fake.send({"type": "shutdown", "close_in_ms": 100})

    wait_until(lambda: fake.subscribed(1, "order_book/0"), what="a new connection")
    wait_until(lambda: fake.open_connections() == 1, what="the old connection closed")


def test_refused_connections_are_retried_until_the_server_accepts(stream, fake):
    fake.accepting = False
    consumer = stream(["ETHUSD"])

    wait_until(lambda: fake.refused >= 3, what="retries")
    assert consumer.quotes == [] and not any(consumer.live)
    fake.accepting = True

    wait_until(lambda: consumer.shows("ETHUSD", "3100.10", "3100.50"), what="quotes once accepted")


def test_reconnect_waits_grow_exponentially_with_jitter_up_to_the_cap():
    timings = StreamTimings(backoff_seconds=1.0, max_backoff_seconds=30.0)
    for failures, ceiling in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 30.0)]:
        waits = [timings.backoff(failures) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1, "jittered"


def test_symbols_lighter_does_not_list_are_left_out(stream, fake):
    consumer = stream(["ETHUSD", "DOGEUSD"])

    wait_until(lambda: consumer.latest("ETHUSD"), what="the ETH snapshot")
    assert [m["channel"] for m in fake.messages("subscribe")] == ["order_book/0"]
    assert {q.symbol for q in consumer.quotes} == {"ETHUSD"}


def test_stopping_returns_and_closes_the_connection(stream, fake):
    consumer = stream(["ETHUSD"])
    wait_until(lambda: consumer.latest("ETHUSD"), what="the snapshot")

    consumer.halt()

    wait_until(lambda: fake.open_connections() == 0, what="the socket closed")
    assert consumer.live[-1] == frozenset()


def test_closing_the_venue_ends_its_streams(venue, fake, consumers):
    consumer = Consumer(venue, ["ETHUSD"])
    consumers.append(consumer)
    wait_until(lambda: consumer.latest("ETHUSD"), what="the snapshot")

    venue.close()

    consumer.thread.join(2)
    assert not consumer.thread.is_alive()
    wait_until(lambda: fake.open_connections() == 0, what="the socket closed")
