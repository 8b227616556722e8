"""The venue side of a user: which account at a venue a user's orders and positions belong to."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import User
from providers import registry
from trading.models import Order

POLL_FIRST = timedelta(seconds=1)
POLL_MAX = timedelta(minutes=1)


def venue_account_ref(*, user: User, provider: str) -> str:
    """The account ``user`` trades from at the venue ``provider``, as the venue maps it (the
    wallets are read only by a venue that trades from the user's own wallet)."""
    wallets = user.wallets.order_by("created_at").values_list("address", flat=True)
    return registry.venue(provider).account_ref(user_id=str(user.pk), wallet_addresses=wallets)


def poll_schedule(order: Order) -> None:
    """An order pending at its venue: when to ask about it next, backing off (1 s, 2 s, 4 s ...
    up to a minute) with each look-up that finds it still pending. The caller saves
    ``next_poll_at`` and ``poll_attempts``."""
    delay = min(POLL_FIRST * 2**order.poll_attempts, POLL_MAX)
    order.next_poll_at = timezone.now() + delay
    order.poll_attempts += 1
