from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from conftest import bearer_client, requires_postgres
from marqetfi.core import events
from marqetfi.core.models import Event
from marqetfi.core.realtime import user_stream_channel
from tests.accounts.factories import UserFactory
from tests.core import dispatchers

RECORD = "tests.core.dispatchers.record"
BROKEN = "tests.core.dispatchers.broken"
KEEP = "tests.core.dispatchers.keep"


@pytest.fixture(autouse=True)
def _reset_recorder():
    dispatchers.received.clear()
    dispatchers.batches.clear()
    dispatchers.handed.clear()


@pytest.mark.django_db
def test_each_user_has_their_own_sequence_starting_at_one():
    alice, bob = UserFactory(), UserFactory()
    seqs = [events.publish(user_id=alice.pk, type="order.created", data={"n": i}).seq for i in range(3)]
    assert seqs == [1, 2, 3]
    assert events.publish(user_id=bob.pk, type="order.created", data={}).seq == 1


@pytest.mark.django_db
def test_a_rolled_back_publish_gives_its_number_back():
    user = UserFactory()
    events.publish(user_id=user.pk, type="order.created", data={})
    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish(user_id=user.pk, type="order.filled", data={})
        raise RuntimeError("the order could not be saved")
    assert events.publish(user_id=user.pk, type="order.cancelled", data={}).seq == 2
    assert list(Event.objects.filter(user=user).values_list("seq", "type")) == [
        (1, "order.created"),
        (2, "order.cancelled"),
    ]


@pytest.mark.django_db
def test_decimal_data_is_stored_as_strings():
    user = UserFactory()
    event = events.publish(user_id=user.pk, type="trade.executed", data={"price": Decimal("64123.50")})
    event.refresh_from_db()
    assert event.data == {"price": "64123.50"}


@pytest.mark.django_db
def test_dispatch_waits_for_commit_then_reaches_the_users_stream(
    django_capture_on_commit_callbacks, stream_listener
):
    user = UserFactory()
    stream_listener.subscribe(user_stream_channel(user.pk))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = events.publish(user_id=user.pk, type="order.filled", data={"order_id": "o-1"})
    event.refresh_from_db()
    assert event.dispatched_at is None, "nothing goes out before commit"
    for callback in callbacks:
        callback()
    message = stream_listener.receive()
    assert message == {
        "id": f"evt_{event.id.hex}",
        "type": "order.filled",
        "seq": 1,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {"order_id": "o-1"},
    }
    event.refresh_from_db()
    assert event.dispatched_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_events_of_one_transaction_are_handed_over_in_one_batch_in_order():
    user = UserFactory()
    with override_settings(EVENT_DISPATCHERS=[RECORD]), transaction.atomic():
        for kind in ("order.created", "order.filled", "trade.executed", "position.opened"):
            events.publish(user_id=user.pk, type=kind, data={})
        assert dispatchers.received == [], "nothing before commit"
    assert dispatchers.batches == [4]
    assert dispatchers.received == [
        ("order.created", 1),
        ("order.filled", 2),
        ("trade.executed", 3),
        ("position.opened", 4),
    ]
    assert not Event.objects.filter(user=user, dispatched_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_events_published_together_take_the_next_numbers_in_order_and_go_with_the_others():
    user = UserFactory()
    with override_settings(EVENT_DISPATCHERS=[RECORD]), transaction.atomic():
        events.publish(user_id=user.pk, type="order.created", data={})
        published = events.publish_many(
            user_id=user.pk,
            events=[("order.filled", {"n": 1}), ("trade.executed", {"n": 2}), ("position.updated", {})],
        )
        assert [event.seq for event in published] == [2, 3, 4]
    with override_settings(EVENT_DISPATCHERS=[RECORD]):
        assert events.publish(user_id=user.pk, type="order.created", data={}).seq == 5
    assert dispatchers.batches == [4, 1]
    assert dispatchers.received == [
        ("order.created", 1),
        ("order.filled", 2),
        ("trade.executed", 3),
        ("position.updated", 4),
        ("order.created", 5),
    ]
    assert list(
        Event.objects.filter(user=user, seq__in=(2, 3)).order_by("seq").values_list("data", flat=True)
    ) == [
        {"n": 1},
        {"n": 2},
    ]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoints_event_is_skipped_and_the_others_still_go():
    user = UserFactory()
    with override_settings(EVENT_DISPATCHERS=[RECORD]), transaction.atomic():
        events.publish(user_id=user.pk, type="order.created", data={})
        with pytest.raises(ValueError), transaction.atomic():
            events.publish(user_id=user.pk, type="order.filled", data={})
            raise ValueError("the fill failed")
        events.publish(user_id=user.pk, type="order.rejected", data={})
    assert dispatchers.batches == [2]
    assert dispatchers.received == [("order.created", 1), ("order.rejected", 2)]


@pytest.mark.django_db
def test_nothing_is_dispatched_when_the_transaction_rolls_back(django_capture_on_commit_callbacks):
    user = UserFactory()
    with (
        override_settings(EVENT_DISPATCHERS=[RECORD]),
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValueError),
        transaction.atomic(),
    ):
        events.publish(user_id=user.pk, type="order.created", data={})
        raise ValueError("risk check failed")
    assert dispatchers.received == []
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_a_failed_dispatch_is_kept_and_the_sweeper_sends_it_again(django_capture_on_commit_callbacks):
    user = UserFactory()
    with (
        override_settings(EVENT_DISPATCHERS=[RECORD, BROKEN]),
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = events.publish(user_id=user.pk, type="deposit.confirmed", data={})
    event.refresh_from_db()
    assert event.dispatched_at is None
    assert event.dispatch_attempts == 1
    assert "receiver unreachable" in event.last_dispatch_error

    with override_settings(EVENT_DISPATCHERS=[RECORD]):
        assert events.events_redispatch(older_than=timedelta(hours=1)) == 0, "too recent to sweep"
        assert events.events_redispatch(older_than=timedelta(0)) == 1
        assert events.events_redispatch(older_than=timedelta(0)) == 0, "already dispatched"
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert event.dispatch_attempts == 2
    assert dispatchers.received == [("deposit.confirmed", 1), ("deposit.confirmed", 1)]


@pytest.mark.django_db
def test_an_event_whose_process_died_before_dispatch_is_swept():
    """No on-commit callback ran (the process died): the sweeper is the safety net."""
    user = UserFactory()
    Event.objects.create(user=user, seq=1, type="position.closed", data={})
    with override_settings(EVENT_DISPATCHERS=[RECORD]):
        assert events.events_redispatch(older_than=timedelta(0)) == 1
    assert dispatchers.received == [("position.closed", 1)]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_for_one_user_never_skip_or_repeat_a_number():
    user = UserFactory()
    writers, per_writer = 8, 10
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            barrier.wait()
            for n in range(per_writer):
                try:
                    with transaction.atomic():
                        events.publish(user_id=user.pk, type="order.created", data={"w": index, "n": n})
                        if n % 3 == 0:
                            raise LookupError("rolled back on purpose")
                except LookupError:
                    pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    close_old_connections()
    assert not errors, errors
    committed = writers * sum(1 for n in range(per_writer) if n % 3 != 0)
    seqs = sorted(Event.objects.filter(user=user).values_list("seq", flat=True))
    assert seqs == list(range(1, committed + 1))


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_blocks_of_events_for_one_user_take_contiguous_numbers_in_order():
    """``publish_many`` takes its block and writes its rows in one statement: blocks of
    several sizes, some rolled back, still number every committed event once, with no gap,
    each block's events one after the other in the order given."""
    user = UserFactory()
    writers, per_writer = 6, 8
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            barrier.wait()
            for n in range(per_writer):
                try:
                    with transaction.atomic():
                        events.publish_many(
                            user_id=user.pk,
                            events=[
                                ("order.created", {"w": index, "n": n, "k": k}) for k in range(1 + n % 3)
                            ],
                        )
                        if n % 4 == 1:
                            raise LookupError("rolled back on purpose")
                except LookupError:
                    pass
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    close_old_connections()
    assert not errors, errors
    committed = writers * sum(1 + n % 3 for n in range(per_writer) if n % 4 != 1)
    rows = list(Event.objects.filter(user=user).order_by("seq").values_list("seq", "data"))
    assert [seq for seq, _ in rows] == list(range(1, committed + 1))
    blocks: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for seq, data in rows:
        blocks.setdefault((data["w"], data["n"]), []).append((seq, data["k"]))
    for (_, n), block in blocks.items():
        assert [k for _, k in block] == list(range(1 + n % 3))
        assert [seq for seq, _ in block] == list(range(block[0][0], block[0][0] + len(block)))


@pytest.mark.django_db(transaction=True)
def test_published_events_are_saved_instances_holding_what_their_rows_hold():
    user = UserFactory()
    with transaction.atomic():
        events.publish(user_id=user.pk, type="order.created", data={})
        published = events.publish_many(
            user_id=str(user.pk),
            events=[
                ("trade.executed", {"price": Decimal("64123.50")}),
                ("position.updated", {"b": 1, "a": 2}),
            ],
        )
        for event in published:
            assert event._state.adding is False
            assert event._state.db == "default"
            stored = Event.objects.get(pk=event.pk)
            assert (stored.user_id, stored.seq, stored.type, stored.created_at) == (
                user.pk,
                event.seq,
                event.type,
                event.created_at,
            )
            assert (stored.dispatched_at, stored.dispatch_attempts, stored.last_dispatch_error) == (
                None,
                0,
                "",
            )
            assert (event.dispatched_at, event.dispatch_attempts, event.last_dispatch_error) == (None, 0, "")
    assert [event.seq for event in published] == [2, 3]
    assert published[0].data == {"price": Decimal("64123.50")}, "the data as given, as bulk_create leaves it"


@pytest.mark.django_db(transaction=True)
def test_dispatchers_get_the_events_as_their_rows_read_back():
    """The events handed over come from memory, not from a query, but as a query gives them:
    the data through its JSON column (a Decimal as its text, PostgreSQL's key order)."""
    user = UserFactory()
    with override_settings(EVENT_DISPATCHERS=[KEEP]), transaction.atomic():
        events.publish(user_id=str(user.pk), type="order.created", data={"zz": 1, "a": [Decimal("1.50")]})
        events.publish_many(
            user_id=user.pk,
            events=[
                ("trade.executed", {"price": Decimal("64123.50"), "id": "t-1"}),
                ("position.updated", {}),
            ],
        )
    read_back = {event.pk: event for event in Event.objects.filter(user=user)}
    assert [(event.type, event.seq) for event in dispatchers.handed] == [
        ("order.created", 1),
        ("trade.executed", 2),
        ("position.updated", 3),
    ]
    for event in dispatchers.handed:
        row = read_back[event.pk]
        assert (event.user_id, event.seq, event.type, event.created_at) == (
            row.user_id,
            row.seq,
            row.type,
            row.created_at,
        )
        assert event.data == row.data
        assert list(event.data) == list(row.data), "same key order"
        assert (event.dispatched_at, event.dispatch_attempts, event.last_dispatch_error) == (None, 0, "")
        assert row.dispatched_at is not None
    assert dispatchers.handed[0].data == {"zz": 1, "a": ["1.50"]}


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_publish_is_one_statement_and_the_hand_over_one_update():
    user = UserFactory()
    events.publish(user_id=user.pk, type="order.created", data={})  # the counter row exists
    with (
        override_settings(EVENT_DISPATCHERS=[RECORD]),
        CaptureQueriesContext(connection) as queries,
        transaction.atomic(),
    ):
        events.publish(user_id=user.pk, type="order.created", data={})
        events.publish_many(
            user_id=user.pk,
            events=[("order.filled", {}), ("trade.executed", {}), ("position.updated", {})],
        )
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 5, "\n".join(statements)
    assert statements[0] == "BEGIN"
    assert statements[1].startswith('WITH block AS (INSERT INTO "core_event_stream"')
    assert statements[2].startswith('WITH block AS (INSERT INTO "core_event_stream"')
    assert statements[3] == "COMMIT"
    assert statements[4].startswith('UPDATE "core_event" SET "dispatched_at"')
    assert dispatchers.batches == [4]
    assert dispatchers.received == [
        ("order.created", 2),
        ("order.filled", 3),
        ("trade.executed", 4),
        ("position.updated", 5),
    ]
    assert not Event.objects.filter(user=user, dispatched_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_events_of_savepoints_rolled_back_after_the_last_publish_are_not_handed_over():
    user = UserFactory()
    with (
        override_settings(EVENT_DISPATCHERS=[RECORD]),
        CaptureQueriesContext(connection) as queries,
        transaction.atomic(),
    ):
        events.publish(user_id=user.pk, type="order.created", data={})
        with transaction.atomic():
            events.publish(user_id=user.pk, type="order.filled", data={})  # its savepoint is kept
        with pytest.raises(ValueError), transaction.atomic():
            events.publish(user_id=user.pk, type="trade.executed", data={})
            with transaction.atomic():
                events.publish_many(user_id=user.pk, events=[("position.opened", {}), ("fee.charged", {})])
            raise ValueError("the outer savepoint rolls back, the inner one with it")
    assert dispatchers.batches == [2]
    assert dispatchers.received == [("order.created", 1), ("order.filled", 2)]
    assert list(Event.objects.filter(user=user).values_list("seq", "type")) == [
        (1, "order.created"),
        (2, "order.filled"),
    ]
    assert not any('FROM "core_event"' in query["sql"] for query in queries.captured_queries), "no reload"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transactions_events_do_not_go_with_the_next_transaction():
    user = UserFactory()
    with override_settings(EVENT_DISPATCHERS=[RECORD]):
        with pytest.raises(ValueError), transaction.atomic():
            events.publish_many(user_id=user.pk, events=[("order.created", {}), ("order.filled", {})])
            raise ValueError("rolled back")
        with transaction.atomic():
            events.publish(user_id=user.pk, type="order.rejected", data={})
    assert dispatchers.batches == [1]
    assert dispatchers.received == [("order.rejected", 1)]


# --- GET /api/v1/events -----------------------------------------------------------------


@pytest.mark.django_db
def test_events_api_lists_only_the_callers_events_after_a_sequence():
    alice, bob = UserFactory(), UserFactory()
    for i in range(4):
        events.publish(user_id=alice.pk, type="order.created", data={"i": i})
    events.publish(user_id=bob.pk, type="order.created", data={"secret": "bob's"})
    response = bearer_client(alice).get("/api/v1/events?after_seq=2")
    assert response.status_code == 200
    body = response.json()
    assert [e["seq"] for e in body["results"]] == [3, 4]
    assert body["next"] is None
    first = body["results"][0]
    assert set(first) == {"id", "type", "seq", "created_at", "data"}
    assert first["id"].startswith("evt_") and first["data"] == {"i": 2}
    assert "bob's" not in response.content.decode()


@pytest.mark.django_db
def test_events_api_pages_with_a_cursor_and_filters_by_type():
    user = UserFactory()
    for i in range(5):
        events.publish(user_id=user.pk, type="order.created" if i % 2 else "trade.executed", data={})
    client = bearer_client(user)
    page = client.get("/api/v1/events?limit=2").json()
    seen = [e["seq"] for e in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [e["seq"] for e in page["results"]]
    assert seen == [1, 2, 3, 4, 5]
    trades = client.get("/api/v1/events?type=trade.executed").json()["results"]
    assert [e["seq"] for e in trades] == [1, 3, 5]


@pytest.mark.django_db
def test_events_api_rejects_a_bad_after_seq():
    response = bearer_client(UserFactory()).get("/api/v1/events?after_seq=-1")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "after_seq" in response.json()["error"]["details"]
