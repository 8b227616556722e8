"""The ``deposits`` WebSocket channel's snapshot: the user's deposits still under way, in the
form ``deposit_update`` carries, oldest first; finished ones and other users' are not in it."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connections

from deposits.models import DepositStatus
from streams.selectors import deposits_pending_snapshot
from tests.accounts.factories import UserFactory
from tests.deposits.factories import DepositFactory, SwapFactory
from tests.streams.test_consumers import opened, token_for


@pytest.mark.django_db
def test_the_snapshot_has_the_users_deposits_under_way_oldest_first(user, django_assert_max_num_queries):
    confirming = DepositFactory(user=user, status=DepositStatus.CONFIRMING, confirmations=1)
    bridging = DepositFactory(user=user, status=DepositStatus.BRIDGING, swap_attempts=1)
    SwapFactory(deposit=bridging, attempt=1, status="sent", failure_code="", finished_at=None)
    DepositFactory(user=user, status=DepositStatus.COMPLETED, credited_amount="25")
    DepositFactory(user=user, status=DepositStatus.FAILED)
    DepositFactory(status=DepositStatus.CONFIRMING)  # someone else's

    deposits_pending_snapshot(user=user)  # fills this process's settings caches
    with django_assert_max_num_queries(2):
        snapshot = deposits_pending_snapshot(user=user)

    assert [(d["id"], d["status"]) for d in snapshot] == [
        (str(confirming.pk), "confirming"),
        (str(bridging.pk), "bridging"),
    ]
    assert snapshot[1]["swap"]["status"] == "sent" and snapshot[1]["amount_usdc"] == "24.9"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_subscribing_to_deposits_sends_the_pending_ones_as_the_snapshot():
    user = await database_sync_to_async(UserFactory)()
    pending = await database_sync_to_async(DepositFactory)(user=user, status=DepositStatus.CONFIRMING)
    ws = await opened(f"/ws?token={token_for(user)}")
    assert (await ws.receive_json_from())["type"] == "authenticated"

    await ws.send_json_to({"op": "subscribe", "channels": ["deposits"]})

    assert await ws.receive_json_from() == {"type": "subscribed", "channels": ["deposits"]}
    snapshot = await ws.receive_json_from()
    assert (snapshot["channel"], snapshot["snapshot"]) == ("deposits", True)
    assert [d["id"] for d in snapshot["data"]] == [str(pending.pk)]
    await ws.disconnect()
    # The database thread's connection would otherwise still be open when the test database goes.
    await database_sync_to_async(connections.close_all)()
