"""Reconciliation: every venue's book of our users' accounts against ours.

Per venue, per account we have business at (open positions, positions closed within the
lookback, orders sent and not settled, open drifts), the venue's open positions and working
orders are compared with our open ``Position`` rows and the ``Order`` rows we sent it. Each
difference is a ``ReconciliationDrift``:

- positions, per market (symbol and side; an account several of our users share, Lighter's,
  is summed): ``missing_at_venue``, ``extra_at_venue``, ``size_mismatch``, ``price_mismatch``
  (the entry prices further apart than ``RECONCILIATION_PRICE_TOLERANCE_BPS``);
- orders we sent (to open; closes show in the positions) and the venue's working orders:
  ``order_missing_at_venue`` (no such order there, or cancelled / rejected there while we
  wait; or a stop-loss / take-profit we hold ``native`` at the venue that is not working
  there: the position is not protected as our book says), ``order_extra_at_venue`` (working
  there, unknown or settled here; a native stop of ours is accounted for),
  ``order_filled_at_venue`` (filled there while we wait).

The one safe repair is the last: the venue's fill is recorded through the order path
(``order_venue_answer_record``) under the order's row lock, so exactly once, and the drift is
kept as ``repaired``. Every other drift opens an operator alert when first found and stays
open, counted on each run that finds it again, until a run no longer finds it (resolved by
reconciliation) or an operator resolves it (audited). Drifts are an operator's matter: no
event goes to the user (a repaired fill reaches them as the fill's own events).

A venue that fails (an error, an open breaker) is skipped and logged; the next run tries again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from marqetfi.core.alerts import operator_alert_raise
from marqetfi.core.audit import audit_record
from marqetfi.core.pacing import DutyCyclePacer
from providers import registry
from providers.base import Venue, VenueOrder, VenueOrderStatus, VenuePosition
from providers.breaker import call_provider
from providers.errors import ProviderError
from trading.errors import ReconciliationDriftNotFound, ReconciliationDriftNotOpen
from trading.models import Order, Position, ProtectiveOrder, ReconciliationDrift, VenueReconciliation
from trading.services.orders import order_venue_answer_record
from trading.services.venues import venue_account_ref

logger = logging.getLogger(__name__)

ALERT_SOURCE = "reconciliation"
Kind = ReconciliationDrift.Kind

# Orders we sent and whose outcome we still wait for: the venue should have them working.
_WAITING = (Order.Status.PENDING, Order.Status.UNKNOWN)
_RESTING_AT_VENUE = (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
_VENUE_GONE = (VenueOrderStatus.CANCELLED, VenueOrderStatus.REJECTED)


@dataclass(frozen=True)
class Observation:
    """One drift as one run sees it; ``fill`` is the venue's answer to record (the repair)."""

    kind: str
    symbol: str = ""
    our_ref: str = ""
    venue_ref: str = ""
    user_id: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    fill: VenueOrder | None = None


@dataclass
class VenueSummary:
    venue: str
    ok: bool = True
    error: str = ""
    accounts: int = 0
    found: int = 0  # drifts seen by this run, repaired ones included
    opened: int = 0  # of which new
    repaired: int = 0
    resolved: int = 0  # open drifts this run no longer found


@dataclass
class ReconciliationSummary:
    venues: list[VenueSummary] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "venues": [asdict(venue) for venue in self.venues],
            "drifts_found": sum(venue.found for venue in self.venues),
            "drifts_opened": sum(venue.opened for venue in self.venues),
            "drifts_repaired": sum(venue.repaired for venue in self.venues),
            "drifts_resolved": sum(venue.resolved for venue in self.venues),
        }


# --- what we hold ---------------------------------------------------------------------------


def _orders_sent(provider: str) -> Any:
    """Our opening orders the venue should know: waiting for its answer, or resting there."""
    return Order.objects.filter(provider=provider, purpose=Order.Purpose.OPEN).filter(
        Q(status__in=_WAITING) | (Q(status__in=_RESTING_AT_VENUE) & ~Q(venue_order_id=""))
    )


def _venues_in_use(since: Any) -> list[str]:
    names: set[str] = set()
    names.update(
        Position.objects.filter(Q(status__in=Position.LIVE) | Q(closed_at__gte=since)).values_list(
            "provider", flat=True
        )
    )
    names.update(
        Order.objects.filter(purpose=Order.Purpose.OPEN)
        .filter(Q(status__in=_WAITING) | (Q(status__in=_RESTING_AT_VENUE) & ~Q(venue_order_id="")))
        .exclude(provider="")
        .values_list("provider", flat=True)
    )
    names.update(
        ReconciliationDrift.objects.filter(status=ReconciliationDrift.Status.OPEN).values_list(
            "venue", flat=True
        )
    )
    return sorted(name for name in names if name)


def _accounts_at(provider: str, since: Any) -> dict[str, set[Any]]:
    """account_ref -> ids of our users trading from it, for every account we have business at."""
    accounts: dict[str, set[Any]] = defaultdict(set)
    positions = Position.objects.filter(provider=provider).filter(
        Q(status__in=Position.LIVE) | Q(closed_at__gte=since)
    )
    for account_ref, user_id in positions.values_list("account_ref", "user_id").distinct():
        accounts[account_ref].add(user_id)
    waiting_users = set(_orders_sent(provider).values_list("user_id", flat=True).distinct())
    for user in User.objects.filter(pk__in=waiting_users):
        accounts[venue_account_ref(user=user, provider=provider)].add(user.pk)
    open_drifts = ReconciliationDrift.objects.filter(venue=provider, status=ReconciliationDrift.Status.OPEN)
    for account_ref, user_id in open_drifts.values_list("account_ref", "user_id").distinct():
        users = accounts[account_ref]
        if user_id is not None:
            users.add(user_id)
    return dict(accounts)


# --- comparing ------------------------------------------------------------------------------


def _market_totals(rows: list[tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal]:
    """Total size and size-weighted entry price of (size, entry) rows."""
    size = sum((row[0] for row in rows), Decimal(0))
    entry = sum((row[0] * row[1] for row in rows), Decimal(0)) / size if size else Decimal(0)
    return size, entry


# Sizes agree when within a billionth of each other: a venue may carry more digits than our
# column keeps (Ostium's collateral x leverage / price to 18 places; SQLite stores decimals
# as floating point), and any real difference is a whole size step, far above this.
SIZE_TOLERANCE = Decimal("1e-9")


def _position_observations(
    ours: list[Position], theirs: list[VenuePosition], tolerance_bps: Decimal
) -> list[Observation]:
    our_markets: dict[tuple[str, str], list[Position]] = defaultdict(list)
    for position in ours:
        our_markets[(position.symbol, str(position.side))].append(position)
    venue_markets: dict[tuple[str, str], list[VenuePosition]] = defaultdict(list)
    for venue_position in theirs:
        venue_markets[(venue_position.symbol, str(venue_position.side))].append(venue_position)

    found: list[Observation] = []
    for market in sorted(set(our_markets) | set(venue_markets)):
        symbol, side = market
        mine, there = our_markets.get(market, []), venue_markets.get(market, [])
        our_ref = ",".join(sorted(str(p.pk) for p in mine))[:128]
        venue_ref = ",".join(sorted(v.venue_position_id for v in there))[:128]
        user_id = mine[0].user_id if len(mine) == 1 else None
        our_size, our_entry = _market_totals([(p.size, p.entry_price) for p in mine])
        venue_size, venue_entry = _market_totals([(v.size, v.entry_price) for v in there])
        facts = {
            "side": side,
            "our_size": str(our_size),
            "venue_size": str(venue_size),
            "our_entry_price": str(our_entry),
            "venue_entry_price": str(venue_entry),
        }
        seen = partial(Observation, symbol=symbol, our_ref=our_ref, venue_ref=venue_ref, user_id=user_id)
        if not there:
            found.append(seen(kind=Kind.MISSING_AT_VENUE, details=facts))
            continue
        if not mine:
            found.append(seen(kind=Kind.EXTRA_AT_VENUE, details=facts))
            continue
        if abs(our_size - venue_size) > max(abs(our_size), abs(venue_size)) * SIZE_TOLERANCE:
            found.append(seen(kind=Kind.SIZE_MISMATCH, details=facts))
        apart_bps = abs(our_entry - venue_entry) / venue_entry * 10_000 if venue_entry else Decimal(0)
        if apart_bps > tolerance_bps:
            facts = {**facts, "apart_bps": str(apart_bps.quantize(Decimal("0.01")))}
            found.append(seen(kind=Kind.PRICE_MISMATCH, details=facts))
    return found


def _order_observations(
    *,
    provider: str,
    venue: Venue,
    account_ref: str,
    sent: list[Order],
    working: list[VenueOrder],
    recent: set[str],
    native_stops: list[ProtectiveOrder],
    grace_cutoff: Any,
) -> list[Observation]:
    """``sent``: our orders the venue should know (past the grace period); ``working``: the
    venue's; ``recent``: client ids, in the venue's form, of our orders changed within the
    grace period (left alone); ``native_stops``: the account's stops we hold armed at the
    venue (``native``), which should be working there unless changed within the grace period."""
    working_by_client = {order.client_order_id: order for order in working if order.client_order_id}
    accounted: set[str] = set()
    found: list[Observation] = []
    for stop in native_stops:
        venue_form = venue.venue_client_order_id(stop.venue_client_order_id)
        resting = working_by_client.get(venue_form)
        if resting is not None:
            accounted.add(resting.venue_order_id)
        elif stop.updated_at < grace_cutoff and venue_form not in recent:
            # The position is no longer protected at the venue as our book says it is.
            found.append(
                Observation(
                    kind=Kind.ORDER_MISSING_AT_VENUE,
                    symbol=stop.symbol,
                    our_ref=str(stop.pk),
                    venue_ref=stop.venue_order_id,
                    user_id=stop.user_id,
                    details={
                        "our_status": str(stop.status),
                        "side": str(stop.side),
                        "kind": str(stop.kind),
                        "execution_mode": str(stop.execution_mode),
                        "trigger_price": str(stop.trigger_price),
                    },
                )
            )
    for order in sent:
        ours = str(order.pk)
        # What the venue follows the order by: our id, or the one it named (an Ostium order is
        # the hash of the transaction that sent it), as order_poll asks it.
        followed_by = order.venue_client_order_id or ours
        answer = working_by_client.get(venue.venue_client_order_id(followed_by)) or call_provider(
            provider, venue.get_order, account_ref=account_ref, client_order_id=followed_by
        )
        if order.venue_order_id:
            accounted.add(order.venue_order_id)
        seen = partial(Observation, symbol=order.symbol, our_ref=ours, user_id=order.user_id)
        facts: dict[str, Any] = {"our_status": str(order.status), "side": str(order.side)}
        if answer is None:
            found.append(seen(kind=Kind.ORDER_MISSING_AT_VENUE, details=facts))
            continue
        accounted.add(answer.venue_order_id)
        facts = {**facts, "venue_status": str(answer.status), "filled_size": str(answer.filled_size)}
        if answer.status == VenueOrderStatus.FILLED and answer.filled_size > 0:
            facts["avg_fill_price"] = str(answer.avg_fill_price)
            found.append(
                seen(
                    kind=Kind.ORDER_FILLED_AT_VENUE,
                    venue_ref=answer.venue_order_id,
                    details=facts,
                    fill=answer,
                )
            )
        elif answer.status in _VENUE_GONE:
            found.append(
                seen(kind=Kind.ORDER_MISSING_AT_VENUE, venue_ref=answer.venue_order_id, details=facts)
            )
    for venue_order in working:
        if venue_order.venue_order_id in accounted or venue_order.client_order_id in recent:
            continue
        found.append(
            Observation(
                kind=Kind.ORDER_EXTRA_AT_VENUE,
                venue_ref=venue_order.venue_order_id,
                details={
                    "venue_status": str(venue_order.status),
                    "client_order_id": venue_order.client_order_id,
                    "filled_size": str(venue_order.filled_size),
                },
            )
        )
    return found


@dataclass(frozen=True)
class _VenuePass:
    """What one venue's pass reads once, before its accounts, to spare each account a query
    that would find nothing (1000 accounts were 8,000 queries, a burst of seconds on the
    machines serving requests)."""

    users_with_sent: frozenset[Any]  # users with an order sent before the grace cutoff
    accounts_with_open_drifts: frozenset[str]

    @classmethod
    def read(cls, provider: str, grace_cutoff: Any) -> _VenuePass:
        # An order changed after this read is inside the grace window, so no account query
        # would list it as sent; drifts are opened by reconciliation itself.
        sent = _orders_sent(provider).filter(updated_at__lt=grace_cutoff)
        drifts = ReconciliationDrift.objects.filter(venue=provider, status=ReconciliationDrift.Status.OPEN)
        return cls(
            users_with_sent=frozenset(sent.values_list("user_id", flat=True).distinct()),
            accounts_with_open_drifts=frozenset(drifts.values_list("account_ref", flat=True).distinct()),
        )


def _account_observations(
    *,
    provider: str,
    venue: Venue,
    account_ref: str,
    user_ids: set[Any],
    grace_cutoff: Any,
    tolerance_bps: Decimal,
    venue_pass: _VenuePass | None = None,
) -> tuple[list[Observation], set[str]]:
    """Ask the venue about one account and compare; raises ProviderError if it does not answer.

    Returns the drifts seen and the symbols whose positions were not compared this time."""
    theirs = call_provider(provider, venue.positions, account_ref=account_ref)
    working = call_provider(provider, venue.open_orders, account_ref=account_ref)
    ours = list(
        # A closing position is still held at the venue until its close settles.
        Position.objects.filter(provider=provider, account_ref=account_ref, status__in=Position.LIVE)
    )
    # Orders changed within the grace window or still waiting, read once: those changed
    # within it are still settling (``recent``, in the form the venue lists client ids:
    # Lighter's are hashes); with the waiting ones, their markets are in flight.
    unsettled = Order.objects.filter(provider=provider, user_id__in=user_ids).filter(
        Q(status__in=_WAITING) | Q(updated_at__gte=grace_cutoff)
    )
    recent: set[str] = set()
    in_flight: set[tuple[str, str]] = set()
    for pk, venue_client_order_id, symbol, side, updated_at in unsettled.values_list(
        "pk", "venue_client_order_id", "symbol", "side", "updated_at"
    ):
        if updated_at >= grace_cutoff:
            recent.add(venue.venue_client_order_id(venue_client_order_id or str(pk)))
        # A market with an order in flight is compared once it settles: its fill may be on
        # one side only for now (the order itself is checked below).
        in_flight.add((symbol, side))
    sent = (
        list(
            _orders_sent(provider)
            .filter(user_id__in=user_ids, updated_at__lt=grace_cutoff)
            .order_by("created_at")
        )
        if venue_pass is None or not venue_pass.users_with_sent.isdisjoint(user_ids)
        else []
    )
    compared = [position for position in theirs if (position.symbol, str(position.side)) not in in_flight]
    # Native stops: the venue holds them as working orders of its own (Lighter's trigger orders).
    native_stops = list(
        ProtectiveOrder.objects.filter(
            position__provider=provider,
            position__account_ref=account_ref,
            status=ProtectiveOrder.Status.ARMED,
            execution_mode=ProtectiveOrder.ExecutionMode.NATIVE,
        )
        .exclude(venue_client_order_id="")
        .order_by("created_at")
    )
    observations = [
        *_position_observations(
            [position for position in ours if (position.symbol, position.side) not in in_flight],
            compared,
            tolerance_bps,
        ),
        *_order_observations(
            provider=provider,
            venue=venue,
            account_ref=account_ref,
            sent=sent,
            working=working,
            recent=recent,
            native_stops=native_stops,
            grace_cutoff=grace_cutoff,
        ),
    ]
    return observations, {symbol for symbol, _ in in_flight}


# --- recording ------------------------------------------------------------------------------


def _drift_record(
    *, provider: str, account_ref: str, seen: Observation, now: Any
) -> tuple[ReconciliationDrift, bool]:
    """The open drift ``seen`` is, counted once more, or a new one; and whether it is new."""
    key = {
        "venue": provider,
        "account_ref": account_ref,
        "kind": seen.kind,
        "symbol": seen.symbol,
        "our_ref": seen.our_ref,
        "venue_ref": seen.venue_ref,
    }
    drift = (
        ReconciliationDrift.objects.select_for_update()
        .filter(status=ReconciliationDrift.Status.OPEN, **key)
        .first()
    )
    if drift is not None:
        drift.occurrences = F("occurrences") + 1
        drift.last_seen_at = now
        drift.details = seen.details
        drift.save(update_fields=["occurrences", "last_seen_at", "details", "updated_at"])
        drift.refresh_from_db(fields=["occurrences"])
        return drift, False
    drift = ReconciliationDrift.objects.create(
        **key, user_id=seen.user_id, details=seen.details, detected_at=now, last_seen_at=now
    )
    return drift, True


def _repair_fill(*, provider: str, account_ref: str, seen: Observation, now: Any) -> bool:
    """Record the venue's fill of an order we still wait for, once: under the order's row lock,
    only while it still waits. Returns whether it was recorded now."""
    assert seen.fill is not None
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(no_key=True)
            .filter(pk=seen.our_ref, status__in=[*_WAITING, *_RESTING_AT_VENUE])
            .first()
        )
        if order is None:
            return False
        order_venue_answer_record(order_id=order.pk, provider=provider, venue_order=seen.fill)
        ReconciliationDrift.objects.create(
            venue=provider,
            account_ref=account_ref,
            kind=seen.kind,
            symbol=seen.symbol,
            our_ref=seen.our_ref,
            venue_ref=seen.venue_ref,
            user_id=seen.user_id,
            details=seen.details,
            status=ReconciliationDrift.Status.REPAIRED,
            detected_at=now,
            last_seen_at=now,
            resolved_at=now,
            resolution="the venue's fill was recorded",
        )
    logger.warning(
        "reconciliation: %s had filled order %s we were waiting for; fill recorded", provider, seen.our_ref
    )
    return True


def _alert(drift: ReconciliationDrift) -> None:
    operator_alert_raise(
        source=ALERT_SOURCE,
        code=drift.kind,
        reference=f"drift:{drift.pk}",
        message=(
            f"{drift.get_kind_display()} at {drift.venue} (account {drift.account_ref or '-'}"
            f"{', ' + drift.symbol if drift.symbol else ''})"
        ),
        details={
            "drift_id": str(drift.pk),
            "venue": drift.venue,
            "account_ref": drift.account_ref,
            "our_ref": drift.our_ref,
            "venue_ref": drift.venue_ref,
            **drift.details,
        },
    )


_POSITION_KINDS = (Kind.MISSING_AT_VENUE, Kind.EXTRA_AT_VENUE, Kind.SIZE_MISMATCH, Kind.PRICE_MISMATCH)


def _account_apply(
    *,
    provider: str,
    account_ref: str,
    observations: list[Observation],
    not_compared: set[str],
    summary: VenueSummary,
    venue_pass: _VenuePass | None = None,
) -> None:
    """Record what one account's comparison saw; open drifts it did not see are resolved,
    except those of positions it did not compare (``not_compared`` symbols)."""
    now = timezone.now()
    kept: list[Any] = []
    for seen in observations:
        if seen.kind == Kind.ORDER_FILLED_AT_VENUE:
            if _repair_fill(provider=provider, account_ref=account_ref, seen=seen, now=now):
                summary.found += 1
                summary.repaired += 1
            continue
        with transaction.atomic():
            drift, created = _drift_record(provider=provider, account_ref=account_ref, seen=seen, now=now)
            if created:
                _alert(drift)
        kept.append(drift.pk)
        summary.found += 1
        summary.opened += int(created)
    if venue_pass is not None and not kept and account_ref not in venue_pass.accounts_with_open_drifts:
        return  # no drift open at this account: nothing to resolve
    summary.resolved += (
        ReconciliationDrift.objects.filter(
            venue=provider, account_ref=account_ref, status=ReconciliationDrift.Status.OPEN
        )
        .exclude(pk__in=kept)
        .exclude(kind__in=_POSITION_KINDS, symbol__in=not_compared)
        .update(
            status=ReconciliationDrift.Status.RESOLVED,
            resolved_at=now,
            resolution="no longer found by reconciliation",
            updated_at=now,
        )
    )


def _venue_reconcile(
    provider: str, *, since: Any, grace_cutoff: Any, tolerance_bps: Decimal, pacer: DutyCyclePacer
) -> VenueSummary:
    summary = VenueSummary(venue=provider)
    try:
        venue = registry.venue(provider)
        accounts = sorted(_accounts_at(provider, since).items())
        venue_pass = _VenuePass.read(provider, grace_cutoff)
        for account_ref, user_ids in accounts:
            observations, not_compared = _account_observations(
                provider=provider,
                venue=venue,
                account_ref=account_ref,
                user_ids=user_ids,
                grace_cutoff=grace_cutoff,
                tolerance_bps=tolerance_bps,
                venue_pass=venue_pass,
            )
            _account_apply(
                provider=provider,
                account_ref=account_ref,
                observations=observations,
                not_compared=not_compared,
                summary=summary,
                venue_pass=venue_pass,
            )
            summary.accounts += 1
            pacer.step()
    except ProviderError as exc:
        summary.ok, summary.error = False, str(exc)[:500]
        logger.warning("reconciliation: %s skipped: %s", provider, exc)
    return summary


def _venue_state_record(summary: VenueSummary, started: Any) -> None:
    now = timezone.now()
    state, _ = VenueReconciliation.objects.get_or_create(venue=summary.venue)
    state.last_started_at = started
    state.last_finished_at = now
    state.last_error = summary.error
    if summary.ok:
        state.last_ok_at = now
    state.accounts_checked = summary.accounts
    state.drifts_found = summary.found
    state.drifts_repaired = summary.repaired
    state.runs += 1
    state.save()


def reconciliation_run(
    *, venues: list[str] | None = None, order_grace: timedelta | None = None
) -> ReconciliationSummary:
    """Reconcile every venue we have business at (or only ``venues``); see the module's doc.

    ``order_grace``: orders changed more recently are left alone (their venue may still be
    answering); ``RECONCILIATION_ORDER_GRACE_SECONDS`` by default.
    """
    now = timezone.now()
    if order_grace is None:
        order_grace = timedelta(seconds=settings.RECONCILIATION_ORDER_GRACE_SECONDS)
    since = now - timedelta(hours=settings.RECONCILIATION_LOOKBACK_HOURS)
    tolerance = Decimal(str(settings.RECONCILIATION_PRICE_TOLERANCE_BPS))
    summary = ReconciliationSummary()
    # Spread over up to half the interval, at RECONCILIATION_DUTY_CYCLE of a core: a pass over
    # thousands of accounts in one burst stalls the web processes on a small machine.
    pacer = DutyCyclePacer(
        duty=settings.RECONCILIATION_DUTY_CYCLE,
        deadline=time.monotonic() + settings.RECONCILIATION_INTERVAL_SECONDS / 2,
    )
    for provider in venues if venues is not None else _venues_in_use(since):
        started = timezone.now()
        venue_summary = _venue_reconcile(
            provider, since=since, grace_cutoff=now - order_grace, tolerance_bps=tolerance, pacer=pacer
        )
        _venue_state_record(venue_summary, started)
        summary.venues.append(venue_summary)
    return summary


# --- operators ------------------------------------------------------------------------------


@transaction.atomic
def reconciliation_drift_resolve(*, drift_id: Any, actor: User, reason: str) -> ReconciliationDrift:
    """An operator closes an open drift (looked into, put right by hand); audited."""
    try:
        drift = ReconciliationDrift.objects.select_for_update().filter(pk=drift_id).first()
    except (ValueError, TypeError):
        drift = None
    if drift is None:
        raise ReconciliationDriftNotFound(details={"drift_id": str(drift_id)})
    if drift.status != ReconciliationDrift.Status.OPEN:
        raise ReconciliationDriftNotOpen(details={"drift_id": str(drift.pk), "status": drift.status})
    drift.status = ReconciliationDrift.Status.RESOLVED
    drift.resolved_at = timezone.now()
    drift.resolved_by = actor
    drift.resolution = reason[:500]
    drift.save(update_fields=["status", "resolved_at", "resolved_by", "resolution", "updated_at"])
    audit_record(
        actor=actor,
        action="reconciliation_drift.resolve",
        target_type="reconciliation_drift",
        target_id=drift.pk,
        changes={"status": {"before": "open", "after": "resolved"}, "reason": reason},
    )
    return drift
