"""Following venues that push what becomes of orders (``providers.base.OrderFollowing``,
Lighter's account stream): which accounts to follow and which client ids there, and
recording each outcome through the same services a poll uses.

Exactly once: a pushed outcome goes through ``order_venue_answer_record`` (opening orders),
``position_close_answer_record`` (closes) or ``protective_native_fired`` (native stops), each
of which changes only a row still waiting under its lock, so the stream, the follower's own
REST polling and ``orders_reconcile`` may all see the same fill and it is recorded once.
Run by ``manage.py venuefollow`` (``trading.follower``); polling by the beat stays the
fallback for everything here.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from providers import registry
from providers.base import OrderFollowing, VenueOrder, VenueOrderStatus
from providers.errors import ProviderError
from trading.models import Order, ProtectiveOrder
from trading.services.orders import order_venue_answer_record
from trading.services.positions import position_close_answer_record, protective_native_fired
from trading.services.venues import venue_account_ref

logger = logging.getLogger(__name__)

WAITING = (Order.Status.PENDING, Order.Status.UNKNOWN)
# What a venue may still change: not worth recording yet.
NOT_FINAL = (
    VenueOrderStatus.ACCEPTED,
    VenueOrderStatus.PENDING,
    VenueOrderStatus.OPEN,
    VenueOrderStatus.UNKNOWN,
)

FollowKey = tuple[str, str]  # (provider, account_ref)


def following_venues() -> list[str]:
    """The configured venues that push order outcomes."""
    names = []
    for name in registry.provider_names("venue"):
        try:
            if isinstance(registry.venue(name), OrderFollowing):
                names.append(name)
        except ProviderError:  # not configured or switched off: nothing to follow there
            continue
    return names


def venue_follow_plan(*, providers: list[str] | None = None) -> dict[FollowKey, list[str]]:
    """The client ids to follow, per (provider, account_ref): opening orders pending or unknown
    there, closes pending or unknown there, and armed native stops."""
    providers = following_venues() if providers is None else providers
    plan: dict[FollowKey, list[str]] = defaultdict(list)
    if not providers:
        return {}
    refs: dict[tuple[str, str], str | None] = {}
    for order in Order.objects.filter(
        provider__in=providers, purpose=Order.Purpose.OPEN, status__in=WAITING
    ).select_related("user"):
        key = (order.provider, str(order.user_id))
        if key not in refs:
            try:
                refs[key] = venue_account_ref(user=order.user, provider=order.provider)
            except ProviderError:  # no account there yet: the order has not gone out
                refs[key] = None
        account_ref = refs[key]
        if account_ref is not None:
            plan[(order.provider, account_ref)].append(order.venue_client_order_id or str(order.pk))
    for order in Order.objects.filter(
        provider__in=providers, purpose=Order.Purpose.CLOSE, status__in=WAITING, position__isnull=False
    ).select_related("position"):
        assert order.position is not None
        plan[(order.provider, order.position.account_ref)].append(
            order.venue_client_order_id or str(order.pk)
        )
    for protective in ProtectiveOrder.objects.filter(
        status=ProtectiveOrder.Status.ARMED,
        execution_mode=ProtectiveOrder.ExecutionMode.NATIVE,
        position__provider__in=providers,
    ).select_related("position"):
        key = (protective.position.provider, protective.position.account_ref)
        plan[key].append(protective.venue_client_order_id)
    return dict(plan)


def venue_follow_client_ids(*, provider: str, account_ref: str) -> list[str]:
    """The client ids to follow at one account now (read again at every batch of the stream,
    so an order placed a moment ago is matched)."""
    return venue_follow_plan(providers=[provider]).get((provider, account_ref), [])


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def venue_order_update_record(*, provider: str, venue_order: VenueOrder) -> None:
    """Record what a venue pushed about one of the orders followed there, by its client id:
    an opening order, a close, or a native stop. A status the venue may still change is left
    for the next update."""
    if venue_order.status in NOT_FINAL:
        return
    client_order_id = venue_order.client_order_id
    order = Order.objects.filter(provider=provider, venue_client_order_id=client_order_id).first()
    order_pk = _as_uuid(client_order_id)
    if order is None and order_pk is not None:
        order = Order.objects.filter(provider=provider, pk=order_pk).first()
    if order is not None:
        if order.status not in WAITING:
            return
        if order.purpose == Order.Purpose.OPEN:
            order_venue_answer_record(order_id=order.pk, provider=provider, venue_order=venue_order)
        else:
            position_close_answer_record(order_id=order.pk, venue_order=venue_order)
        return
    protective = ProtectiveOrder.objects.filter(
        venue_client_order_id=client_order_id, execution_mode=ProtectiveOrder.ExecutionMode.NATIVE
    ).first()
    if protective is not None:
        protective_native_fired(protective_id=protective.pk, venue_order=venue_order)
