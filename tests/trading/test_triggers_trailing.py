"""Trailing-stop moves are published as ``position.updated``, throttled per position, and the
last level of a burst still reaches clients (the next move or the sweep publishes it)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django_redis import get_redis_connection

from conftest import requires_postgres
from marqetfi.core.models import Event
from tests.trading.answer_modes import paper_answer_mode  # noqa: F401 - sync and async
from tests.trading.fixtures_triggers import place
from trading import tasks
from trading.models import Position, ProtectiveOrder
from trading.services.positions import position_lock
from trading.triggers.trailing import PUBLISHED_KEY

pytestmark = pytest.mark.django_db(transaction=True)

A_MINUTE = 60_000


def updates(position_id: Any) -> list[dict[str, Any]]:
    return [
        e.data
        for e in Event.objects.filter(type="position.updated").order_by("seq")
        if e.data["id"] == str(position_id)
    ]


def trailing_stop(position_id: Any) -> ProtectiveOrder:
    return ProtectiveOrder.objects.get(position_id=position_id, kind="trailing_stop", status="armed")


def test_a_trailing_move_publishes_the_position_with_its_new_stop(funded_trader, price_to):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"distance": "1000"}).position_id
    version = Position.objects.get(pk=position_id).resource_version
    assert updates(position_id) == []

    price_to("66000")

    [update] = updates(position_id)
    trail = update["trailing_stop"]
    assert (Decimal(trail["best_price"]), Decimal(trail["trigger_price"])) == (Decimal(66000), Decimal(65000))
    assert update["resource_version"] == Position.objects.get(pk=position_id).resource_version > version


def test_a_price_that_moves_no_stop_publishes_nothing(funded_trader, price_to):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"distance": "1000"}).position_id

    price_to("63500")

    assert updates(position_id) == []


@override_settings(TRAILING_UPDATE_MIN_INTERVAL_MS=A_MINUTE)
def test_moves_within_the_interval_publish_once_and_the_sweep_publishes_the_last(funded_trader, price_to):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"distance": "1000"}).position_id
    versions = []

    for step in range(1, 11):
        price_to(str(64000 + 100 * step))
        versions.append(Position.objects.get(pk=position_id).resource_version)

    assert versions == sorted(set(versions))  # every move bumps the version, published or not
    [first] = updates(position_id)
    assert Decimal(first["trailing_stop"]["trigger_price"]) == Decimal(63100)

    assert tasks.triggers_sweep()["published"] == 1

    last = updates(position_id)[-1]
    assert Decimal(last["trailing_stop"]["trigger_price"]) == Decimal(64000)
    assert last["resource_version"] == Position.objects.get(pk=position_id).resource_version > versions[-1]
    assert trailing_stop(position_id).trigger_price == Decimal(64000)
    assert tasks.triggers_sweep()["published"] == 0  # nothing left to publish


@override_settings(TRAILING_UPDATE_MIN_INTERVAL_MS=A_MINUTE)
def test_the_next_allowed_move_publishes_the_latest_state_and_leaves_nothing_for_the_sweep(
    funded_trader, price_to
):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"distance": "1000"}).position_id
    price_to("64100")
    price_to("64200")  # throttled
    get_redis_connection("default").delete(f"{PUBLISHED_KEY}{position_id}")  # the interval is over

    price_to("64300")

    published = updates(position_id)
    assert [Decimal(u["trailing_stop"]["trigger_price"]) for u in published] == [
        Decimal(63100),
        Decimal(63300),
    ]
    assert published[-1]["resource_version"] == Position.objects.get(pk=position_id).resource_version
    assert tasks.triggers_sweep()["published"] == 0


def test_a_burst_at_the_default_interval_publishes_a_few_events_at_most(funded_trader, price_to):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"percent": "1"}).position_id

    started = time.monotonic()
    for step in range(1, 11):
        price_to(str(64000 + 10 * step))
    elapsed_ms = (time.monotonic() - started) * 1000

    # one event per started interval at most, whatever the speed of the machine
    assert 1 <= len(updates(position_id)) <= 1 + elapsed_ms // settings.TRAILING_UPDATE_MIN_INTERVAL_MS
    tasks.triggers_sweep()
    last = updates(position_id)[-1]
    assert Decimal(last["trailing_stop"]["best_price"]) == Decimal(64100)
    assert last["resource_version"] == Position.objects.get(pk=position_id).resource_version


@override_settings(TRAILING_UPDATE_MIN_INTERVAL_MS=A_MINUTE)
def test_a_position_closed_before_the_sweep_is_not_published_again(funded_trader, price_to):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"distance": "1000"}).position_id
    price_to("64100")
    price_to("64200")  # throttled
    price_to("63200")  # the stop fires: the position closes

    assert Position.objects.get(pk=position_id).status == "closed"
    before = len(updates(position_id))
    tasks.triggers_sweep()
    assert len(updates(position_id)) == before


@requires_postgres
def test_a_tick_does_not_wait_for_a_position_a_close_holds_and_the_sweep_publishes_it(
    funded_trader, price_to
):
    price_to("64000")
    position_id = place(funded_trader, trailing_stop={"distance": "1000"}).position_id
    locked, release = threading.Event(), threading.Event()

    def hold_the_position() -> None:  # a close waiting for its venue
        try:
            with transaction.atomic():
                position_lock(position_id=position_id)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_position)
    holder.start()
    try:
        assert locked.wait(5)
        started = time.monotonic()
        price_to("66000")
        assert time.monotonic() - started < 2
        assert trailing_stop(position_id).trigger_price == Decimal(65000)
        assert updates(position_id) == []
    finally:
        release.set()
        holder.join()

    version = Position.objects.get(pk=position_id).resource_version
    assert tasks.triggers_sweep()["published"] == 1
    [update] = updates(position_id)
    assert Decimal(update["trailing_stop"]["trigger_price"]) == Decimal(65000)
    assert update["resource_version"] == version + 1
