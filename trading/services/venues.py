"""The venue side of a user: which account at a venue a user's orders and positions belong to."""

from __future__ import annotations

from accounts.models import User
from providers import registry


def venue_account_ref(*, user: User, provider: str) -> str:
    """The account ``user`` trades from at the venue ``provider``, as the venue maps it (the
    wallets are read only by a venue that trades from the user's own wallet)."""
    wallets = user.wallets.order_by("created_at").values_list("address", flat=True)
    return registry.venue(provider).account_ref(user_id=str(user.pk), wallet_addresses=wallets)
