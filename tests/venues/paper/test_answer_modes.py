"""The paper venue's answer modes: ``async`` answers pending and executes when looked up once
due; ``drop_answers`` acts, then loses the answer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers import registry
from providers.base import OrderType, Side, VenueOrder, VenueOrderRequest
from providers.errors import ProviderError
from providers.models import PaperOrder, PaperPosition
from providers.venues.paper.adapter import PaperVenue
from tests.venues.paper.conftest import Clock, pin

pytestmark = pytest.mark.django_db

ACCOUNT = "paper:trader-1"


def venue_answering(clock: Clock, **options: str) -> PaperVenue:
    return PaperVenue(spread_bps="0", slippage_bps="0", volatility_bps="0", now=clock, **options)


def looked_up(venue: PaperVenue, client_order_id: str) -> VenueOrder:
    found = venue.get_order(account_ref=ACCOUNT, client_order_id=client_order_id)
    assert found is not None
    return found


def market(client_order_id: str = "o-1") -> VenueOrderRequest:
    return VenueOrderRequest(
        account_ref=ACCOUNT,
        client_order_id=client_order_id,
        symbol="BTCUSD",
        side=Side.LONG,
        type=OrderType.MARKET,
        collateral=Decimal(1000),
        leverage=Decimal(10),
    )


def test_an_async_order_is_pending_until_looked_up_after_its_delay_then_fills_at_that_price(clock):
    venue = venue_answering(clock, answer_mode="async", answer_delay_seconds="5")
    pin(venue, BTCUSD="64000")

    placed = venue.place_order(order=market())

    assert (placed.status, placed.filled_size) == ("pending", Decimal(0))
    assert looked_up(venue, "o-1").status == "pending"
    assert venue.positions(account_ref=ACCOUNT) == []
    clock.advance(6)
    pin(venue, BTCUSD="62500")
    filled = looked_up(venue, "o-1")
    assert (filled.status, filled.avg_fill_price, filled.filled_size) == (
        "filled",
        Decimal(62500),
        Decimal("0.16"),
    )
    assert looked_up(venue, "o-1") == filled  # executed once
    assert PaperPosition.objects.get().size == Decimal("0.16")


def test_an_async_close_under_our_client_id_is_followed_by_get_order(clock):
    venue = venue_answering(clock, answer_mode="async")
    pin(venue, BTCUSD="64000")
    venue.place_order(order=market())
    looked_up(venue, "o-1")
    [position] = venue.positions(account_ref=ACCOUNT)

    close = venue.close_position(
        account_ref=ACCOUNT,
        venue_position_id=position.venue_position_id,
        size=Decimal("0.05"),
        client_order_id="c-1",
    )
    again = venue.close_position(
        account_ref=ACCOUNT,
        venue_position_id=position.venue_position_id,
        size=Decimal("0.05"),
        client_order_id="c-1",
    )

    assert (close.status, close.client_order_id) == ("pending", "c-1")
    assert again == close  # the same close, not a second one
    done = looked_up(venue, "c-1")
    assert (done.status, done.filled_size, done.avg_fill_price) == ("filled", Decimal("0.05"), Decimal(64000))
    assert venue.positions(account_ref=ACCOUNT)[0].size == Decimal("0.1062")


def test_a_pending_order_cancelled_at_the_venue_never_executes(clock):
    venue = venue_answering(clock, answer_mode="async", answer_delay_seconds="5")
    pin(venue, BTCUSD="64000")
    placed = venue.place_order(order=market())

    cancelled = venue.cancel_order(account_ref=ACCOUNT, venue_order_id=placed.venue_order_id)
    clock.advance(6)

    assert cancelled.status == "cancelled"
    assert looked_up(venue, "o-1").status == "cancelled"
    assert venue.positions(account_ref=ACCOUNT) == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_dropped_answer_still_leaves_the_order_at_the_venue_once(clock, mode):
    venue = venue_answering(clock, answer_mode=mode, drop_answers="true")
    pin(venue, BTCUSD="64000")

    with pytest.raises(ProviderError) as lost:
        venue.place_order(order=market())
    with pytest.raises(ProviderError):
        venue.place_order(order=market())  # a blind resend would find the first one

    assert lost.value.status_code == 504
    assert PaperOrder.objects.count() == 1
    assert looked_up(venue, "o-1").status == "filled"


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"answer_mode": "later"}, "answer_mode"), ({"answer_delay_seconds": "-1"}, "answer_delay_seconds")],
)
def test_bad_answer_options_are_refused(clock, options, problem):
    with pytest.raises(registry.ProviderNotConfigured, match=problem):
        venue_answering(clock, **options)
