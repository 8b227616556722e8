"""Orders: validated and risk-checked (``order_preview``), placed (``order_place``), executed at
the routed venue with fallbacks, cancelled, and reconciled when a venue's answer was lost.

Money flow: placing an order locks its collateral plus the opening fee (available ->
margin); the fill charges the fee (margin -> fees); a rejection or a cancel releases both.
A rejection before the order row exists changes nothing at all.

Never twice blindly: the order row (status ``pending``) commits before the venue is
called, with our order id as the venue's client order id. A venue that times out leaves
the order ``unknown``; ``orders_reconcile`` asks the venue for that client id before
anything else happens: filled there means filled here, unknown there means it never
arrived and the collateral goes back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from types import EllipsisType
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from ledger.errors import InsufficientBalance
from ledger.models import TransactionKind
from ledger.selectors import user_balances
from ledger.services import (
    TradingAccounts,
    UserAccounts,
    ledger_accounts_for_user,
    ledger_transaction_post,
    trading_accounts_lock,
)
from marqetfi.core.db_locks import advisory_xact_lock
from marqetfi.core.errors import ApplicationError
from marqetfi.core.events import publish
from marqetfi.core.formats import decimal_text
from marqetfi.core.rows import Lock, RowSelect, row_insert
from pricing.errors import MarketClosed
from pricing.market_hours import market_open
from pricing.models import PairListing
from pricing.selectors import pair_listings_routed
from pricing.services.prices import price_for_execution
from providers import registry
from providers.base import OrderType, Side, VenueOrder, VenueOrderRequest, VenueOrderStatus, WalletTradedVenue
from providers.breaker import call_provider
from providers.errors import ProviderError, ProviderUnavailable
from trading import terms
from trading.errors import (
    ClientOrderIdReused,
    CollateralTooSmall,
    LeverageLimitExceeded,
    LimitPriceRequired,
    OneTradePerMarket,
    OrderNotCancellable,
    OrderNotFound,
    PositionClosing,
    PositionNotOpen,
    PositionSizeExceeded,
    PriceOffTick,
    SizeTooSmall,
    TooManyPositions,
    TradingDisabled,
)
from trading.models import Order, Position
from trading.presenters import order_data
from trading.services.fills import LockedForFill, order_fill_open
from trading.services.positions import (
    close_size,
    outcome_unknown,
    position_close,
    position_close_poll,
    position_lock,
)
from trading.services.protection import Protection, protection_check
from trading.services.risk import RiskProfile, risk_profile_get
from trading.services.venues import (
    poll_schedule,
    venue_account_prepare,
    venue_account_ref,
    venue_wallet_fund,
)
from trading.services.wallet_trades import traded_from_wallet, trading_wallet, wallet_trade_send, wallet_venue
from trading.triggers.index import order_index, order_unindex

logger = logging.getLogger(__name__)

RECONCILE_AFTER = timedelta(seconds=10)


@dataclass(frozen=True)
class OrderTerms:
    """What a trader asks for (``POST /orders``), already parsed into Decimals."""

    symbol: str
    side: str
    type: str
    collateral: Decimal
    leverage: Decimal
    price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop: dict[str, str] | None = None
    client_order_id: str = ""
    rounding: str | None = None

    def fingerprint(self) -> str:
        """What makes two requests the same order, for a reused ``client_order_id``: every
        term but the id itself, decimals compared by value ("1000" is "1000.00")."""

        def value(number: Decimal | None) -> str | None:
            return None if number is None else decimal_text(number)

        terms = {
            "symbol": self.symbol.upper(),
            "side": self.side,
            "type": self.type,
            "collateral": value(self.collateral),
            "leverage": value(self.leverage),
            "price": value(self.price),
            "stop_loss": value(self.stop_loss),
            "take_profit": value(self.take_profit),
            "trailing_stop": {k: decimal_text(Decimal(v)) for k, v in (self.trailing_stop or {}).items()}
            or None,
            "rounding": self.rounding or None,
        }
        text = json.dumps(terms, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class OrderPlan:
    """What the order would do now: where it goes, what it costs and where it liquidates."""

    symbol: str
    category: str
    provider: str
    routing: dict[str, Any]
    side: str
    type: str
    collateral: Decimal
    leverage: Decimal
    price: Decimal | None
    entry_price: Decimal
    size: Decimal
    notional: Decimal
    fee: Decimal
    liquidation_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing_stop: dict[str, str] | None
    rounding: dict[str, Any] = field(default_factory=dict)
    risk: RiskProfile | None = None


def _on_tick(
    name: str, value: Decimal | None, tick: Decimal, rounding: str | None, applied: dict[str, Any]
) -> Decimal | None:
    if value is None:
        return None
    accepted = terms.to_step_if_asked(value, tick, rounding)
    if accepted is None:
        raise PriceOffTick(details={"field": name, "value": str(value), "tick_size": str(tick)})
    if accepted != value:
        applied[name] = {"requested": str(value), "accepted": str(accepted)}
    return accepted


def _trailing(trailing: dict[str, str] | None) -> tuple[Decimal | None, Decimal | None]:
    if not trailing:
        return None, None
    percent = trailing.get("percent")
    distance = trailing.get("distance")
    return (
        Decimal(percent) if percent is not None else None,
        Decimal(distance) if distance is not None else None,
    )


def order_preview(*, user: User, order: OrderTerms, holdings_checked_by_caller: bool = False) -> OrderPlan:
    """Validate, route and risk-check an order without changing anything; raises the rejection.

    ``holdings_checked_by_caller``: the checks against what the trader holds (exposure,
    available balance) are left to the caller (``order_place``, which runs them on the rows
    it locks when the order fills in its own transaction, see ``_holdings_check``)."""
    if not getattr(user, "trading_enabled", True):
        raise TradingDisabled()
    if (order.type == Order.Type.LIMIT) != (order.price is not None):
        raise LimitPriceRequired(details={"type": order.type})
    listings, decision = pair_listings_routed(symbol=order.symbol)
    listing = listings[0]
    pair = listing.pair
    now = timezone.now()
    if not market_open(pair.trading_hours, now):
        raise MarketClosed(details={"symbol": pair.symbol, "trading_hours": pair.trading_hours})
    applied: dict[str, Any] = {}
    limit_price = _on_tick("price", order.price, listing.tick_size, order.rounding, applied)
    stop_loss = _on_tick("stop_loss", order.stop_loss, listing.tick_size, order.rounding, applied)
    take_profit = _on_tick("take_profit", order.take_profit, listing.tick_size, order.rounding, applied)
    if order.collateral < listing.min_collateral:
        raise CollateralTooSmall(
            details={"collateral": str(order.collateral), "min_collateral": str(listing.min_collateral)}
        )
    risk = risk_profile_get(
        user=user, symbol=pair.symbol, category=pair.category, venue_max_leverage=listing.max_leverage
    )
    if order.leverage > risk.max_leverage:
        raise LeverageLimitExceeded(
            details={"leverage": str(order.leverage), "max_leverage": str(risk.max_leverage)}
        )
    if limit_price is not None:
        entry = limit_price
    else:
        quote = price_for_execution(pair.symbol)
        entry = terms.opening_price(side=order.side, bid=quote.bid, ask=quote.ask)
    notional = terms.usdc(order.collateral * order.leverage)
    size = terms.size_for(
        collateral=order.collateral, leverage=order.leverage, price=entry, size_step=listing.size_step
    )
    if size <= 0:
        raise SizeTooSmall(details={"size_step": str(listing.size_step), "price": str(entry)})
    applied["size"] = {"requested_notional": str(notional), "size": str(size), "rounding": "down"}
    if (
        traded_from_wallet(listing.provider)
        and Position.objects.filter(
            user=user,
            symbol=pair.symbol,
            side=order.side,
            provider=listing.provider,
            status__in=Position.LIVE,
        ).exists()
    ):
        raise OneTradePerMarket(details={"symbol": pair.symbol, "side": order.side})
    fee = terms.fee_for(notional)
    liquidation = terms.loss_price(
        side=order.side, entry=entry, size=size, collateral=order.collateral, level=risk.liquidation_level
    )
    percent, distance = _trailing(order.trailing_stop)
    protection_check(
        side=order.side,
        entry=entry,
        liquidation=liquidation,
        protection=Protection(
            stop_loss=stop_loss, take_profit=take_profit, trail_percent=percent, trail_distance=distance
        ),
    )
    plan = OrderPlan(
        symbol=pair.symbol,
        category=pair.category,
        provider=listing.provider,
        routing={
            "reason": decision.rule,
            "candidates": decision.venues,
            "skipped": decision.skipped,
            "attempts": [],
        },
        side=order.side,
        type=order.type,
        collateral=order.collateral,
        leverage=order.leverage,
        price=limit_price,
        entry_price=entry,
        size=size,
        notional=notional,
        fee=fee,
        liquidation_price=liquidation,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop=order.trailing_stop,
        rounding=applied,
        risk=risk,
    )
    if not holdings_checked_by_caller:
        _holdings_check(user=user, plan=plan)
    return plan


def _balance_check(*, user: User, required: Decimal, available: Decimal | None = None) -> None:
    if available is None:
        available = user_balances(user=user).available
    if available < required:
        raise InsufficientBalance(required=required, available=available)


def _holdings_check(
    *,
    user: User,
    plan: OrderPlan,
    same_market: Position | EllipsisType | None = ...,
    available: Decimal | None = None,
) -> None:
    """The preview's checks against what the trader holds: exposure, then the available
    balance; on the rows given (locked by the caller) or read here."""
    assert plan.risk is not None, "order_preview sets the risk profile"
    _check_exposure(
        user=user,
        symbol=plan.symbol,
        provider=plan.provider,
        side=plan.side,
        collateral=plan.collateral,
        notional=plan.notional,
        risk=plan.risk,
        same_market=same_market,
    )
    _balance_check(user=user, required=plan.collateral + plan.fee, available=available)


def _check_exposure(
    *,
    user: User,
    symbol: str,
    provider: str,
    side: str,
    collateral: Decimal,
    notional: Decimal,
    risk: RiskProfile,
    same_market: Position | EllipsisType | None = ...,
) -> None:
    """``same_market``: the live position the order adds to (None: none), when the caller has
    it (locked) already; read here otherwise."""
    open_positions = Position.objects.filter(user=user, status__in=Position.LIVE)
    if same_market is ...:
        same_market = open_positions.filter(symbol=symbol, side=side, provider=provider).first()
    if collateral > risk.max_position_collateral:
        raise PositionSizeExceeded(
            details={
                "collateral": str(collateral),
                "max_position_collateral": str(risk.max_position_collateral),
            }
        )
    if risk.max_position_notional is not None:
        existing = same_market.notional_at_entry if same_market else Decimal(0)
        if existing + notional > risk.max_position_notional:
            raise PositionSizeExceeded(
                details={
                    "notional": str(terms.usdc(existing + notional)),
                    "max_position_notional": str(risk.max_position_notional),
                }
            )
    if risk.max_total_notional is not None:
        total = sum((p.notional_at_entry for p in open_positions), Decimal(0))
        if total + notional > risk.max_total_notional:
            raise PositionSizeExceeded(
                details={
                    "total_notional": str(terms.usdc(total + notional)),
                    "max_total_notional": str(risk.max_total_notional),
                }
            )
    if (
        risk.max_open_positions is not None
        and same_market is None
        and open_positions.count() >= risk.max_open_positions
    ):
        raise TooManyPositions(details={"max_open_positions": risk.max_open_positions})


def order_place(*, user: User, order: OrderTerms) -> tuple[Order, bool]:
    """Place an order; returns it and whether it was created now (False: a replay of the same
    ``client_order_id``). Market orders are executed before this returns; limit orders rest.

    A market order whose venues all settle in our own transaction (the paper venue, see
    ``Venue.settles_in_caller_transaction``) is recorded, sent and filled in one transaction:
    nothing can be at such a venue that we have no row of, so there is nothing to commit
    first; a failure rolls everything back, the venue's book included. At any other venue
    the order row commits before the venue is called (see the module).
    """
    fingerprint = order.fingerprint()
    if order.client_order_id:
        existing = Order.objects.filter(user=user, client_order_id=order.client_order_id).first()
        if existing is not None:
            return _order_replayed(existing, fingerprint), False
    plan = order_preview(user=user, order=order, holdings_checked_by_caller=True)
    in_transaction = plan.type == Order.Type.MARKET and _settles_in_caller_transaction(plan.routing)
    if not in_transaction:
        _holdings_check(user=user, plan=plan)
    try:
        with transaction.atomic():
            if in_transaction:
                # The trader's in-transaction orders one at a time, so that the position row
                # another of them is creating is there (committed) to be locked first; then
                # the position before the ledger rows: the lock order of every close and fill.
                advisory_xact_lock("orders", user.pk)
                live = _live_position_lock(user=user, plan=plan)
            row = Order(
                user=user,
                client_order_id=order.client_order_id,
                terms_hash=fingerprint if order.client_order_id else "",
                symbol=plan.symbol,
                category=plan.category,
                side=plan.side,
                type=plan.type,
                status=Order.Status.OPEN if plan.type == Order.Type.LIMIT else Order.Status.PENDING,
                collateral=plan.collateral,
                leverage=plan.leverage,
                price=plan.price,
                size=plan.size,
                stop_loss=plan.stop_loss,
                take_profit=plan.take_profit,
                trailing_stop=plan.trailing_stop,
                rounding=order.rounding or "",
                fee_reserved=plan.fee,
                provider=plan.provider,
                routing=plan.routing,
            )
            row_insert(row)
            # In one transaction with the fill: the user's accounts and the fees shard the fill
            # will post to are locked together now, in the ledger's one order (by pk). Taking
            # the shard only at the fill would wait on a settlement that holds it and waits on
            # the user's accounts (a close of another position of the same trader): a deadlock.
            held = trading_accounts_lock(user=user) if in_transaction else None
            accounts: UserAccounts | TradingAccounts = held or ledger_accounts_for_user(user=user)
            amount = plan.collateral + plan.fee
            if held is not None:
                # The preview's checks, on the rows locked (a refusal rolls the order row back).
                _holdings_check(user=user, plan=plan, same_market=live, available=held.available.balance)
            ledger_transaction_post(
                kind=TransactionKind.ORDER_COLLATERAL_LOCK,
                legs=[(accounts.available, -amount), (accounts.margin, amount)],
                reference=f"order:{row.pk}",
                memo=f"{plan.type} {plan.side} {plan.symbol}",
                locked=held.by_pk() if held is not None else None,  # not locked again
            )
            publish(user_id=user.pk, type="order.created", data=order_data(row))
            if row.status == Order.Status.OPEN:
                _after_commit_index(row.pk)
            if held is not None:
                locked = LockedForFill(accounts=held, position=live)
                return _order_execute(row, locked=True, risk=plan.risk, held=locked), True
    except IntegrityError:
        existing = Order.objects.filter(user=user, client_order_id=order.client_order_id).first()
        if existing is None:
            raise
        return _order_replayed(existing, fingerprint), False
    if row.type == Order.Type.MARKET:
        order_execute(order_id=row.pk)
        row.refresh_from_db()
    return row, True


def _settles_in_caller_transaction(routing: dict[str, Any]) -> bool:
    """Whether every venue the order may be sent to settles in our own transaction."""
    candidates = routing.get("candidates") or []
    try:
        return bool(candidates) and all(
            registry.venue(name).settles_in_caller_transaction for name in candidates
        )
    except ProviderError:
        return False


_live_positions_locked = RowSelect(
    Position,
    '"user_id" = %s AND "symbol" = %s AND "side" = %s AND "provider" = %s AND "status" IN (%s, %s)',
    ("user", "symbol", "side", "provider", "status", "status"),
    lock=Lock.NO_KEY_UPDATE,
)


def _live_position_lock(*, user: User, plan: OrderPlan) -> Position | None:
    """Lock the user's live position this order would add to, if there is one, and return it."""
    return _live_positions_locked.first(user.pk, plan.symbol, plan.side, plan.provider, *Position.LIVE)


def _order_replayed(existing: Order, fingerprint: str) -> Order:
    """The order a retry with its ``client_order_id`` gets back; another order under the same
    id is refused. Rows from before fingerprints were kept (no hash) replay as before."""
    if existing.terms_hash and existing.terms_hash != fingerprint:
        raise ClientOrderIdReused(details={"client_order_id": existing.client_order_id})
    return existing


def _after_commit_index(order_id: Any) -> None:
    transaction.on_commit(partial(order_index, order_id))


def order_execute(*, order_id: Any) -> Order:
    """Send a pending order to its routed venues in turn (the next one only when a venue could
    not take it at all) and record what happened.

    At a venue with per-user accounts the user's account is opened (first order) and funded
    with the order's collateral and fee first (``venue_account_prepare``); a failure there is
    the venue not taking the order: a late account (retryable) tries the next venue, then
    rejects with ``no_venue_available``, anything else rejects with ``venue_rejected``; the
    collateral goes back either way, and the next order picks the account up where it stopped.
    """
    return _order_execute(Order.objects.select_related("user").get(pk=order_id))


def _order_execute(
    order: Order, *, locked: bool = False, risk: RiskProfile | None = None, held: LockedForFill | None = None
) -> Order:
    """``order_execute`` of a row already read; ``locked``: the caller's transaction created or
    locked it (its answer is recorded on this very row); ``risk``: the profile the order was
    checked against, which a new position takes its levels from (read once per order);
    ``held``: the rows the caller's transaction locked for the fill (not read again)."""
    attempts: list[dict[str, str]] = list(order.routing.get("attempts", []))
    candidates = order.routing.get("candidates") or [order.provider]
    for provider in candidates:
        try:
            venue = registry.venue(provider)
            traded = wallet_venue(venue)
            if traded is not None:
                return _order_execute_from_wallet(order, provider, traded, attempts)
            request = _market_request(order, venue_account_prepare(order=order, provider=provider))
            venue_order = call_provider(provider, venue.place_order, order=request)
        except ProviderError as exc:
            attempts.append({"provider": provider, "error": exc.message})
            if outcome_unknown(exc):
                return _order_mark_unknown(order, provider, attempts)
            if exc.retryable or isinstance(exc, ProviderUnavailable):
                continue
            return order_reject(
                order_id=order.pk,
                code="venue_rejected",
                reason=exc.message,
                attempts=attempts,
                provider=provider,
            )
        attempts.append({"provider": provider, "status": venue_order.status})
        if locked:
            recorded = _order_answer_record(
                order, provider=provider, venue_order=venue_order, attempts=attempts, risk=risk, held=held
            )
        else:
            recorded = order_venue_answer_record(
                order_id=order.pk, provider=provider, venue_order=venue_order, attempts=attempts
            )
        if recorded.status == Order.Status.PENDING:  # pending at the venue: look once more now
            return order_poll(order_id=recorded.pk, just_acknowledged=True)
        return recorded
    return order_reject(
        order_id=order.pk, code="no_venue_available", reason="every routed venue failed", attempts=attempts
    )


def _market_request(order: Order, account_ref: str, **stops: Decimal | None) -> VenueOrderRequest:
    """``order`` as a market order for its venue, by our order id as the client id."""
    return VenueOrderRequest(
        account_ref=account_ref,
        client_order_id=str(order.pk),
        symbol=order.symbol,
        side=Side(order.side),
        type=OrderType.MARKET,
        collateral=order.collateral,
        leverage=order.leverage,
        **stops,
    )


def _order_execute_from_wallet(
    order: Order, provider: str, venue: WalletTradedVenue, attempts: list[dict[str, str]]
) -> Order:
    """Open at a venue traded from the user's wallet: the platform sends the wallet the
    collateral it lacks (``venue_wallet_fund``, mined before anything else), then the wallet
    sends the venue's transactions (an approval first when needed, then the trade, with its
    stop-loss and take-profit) and the trade's hash becomes the order's venue client id. The
    order stays ``pending``, its collateral locked, until the venue shows it executed (filled
    at the chain's price), refused or reverted (rejected, collateral back): ``order_poll``.

    A funding transfer that cannot be made, a wallet that still cannot pay, a price that
    cannot be had, or a send that fails (an estimate that reverts: the venue names why)
    rejects the order at once; nothing was sent then but, at most, the funding (recorded;
    it stays in the wallet for the next trade) and an approval. The order goes to this
    venue only: a venue that took a transaction of the user's wallet cannot be replaced by
    another.
    """
    account_ref = venue_account_ref(user=order.user, provider=provider)
    # The venue holds the stop-loss and take-profit: they go with the trade.
    request = _market_request(order, account_ref, stop_loss=order.stop_loss, take_profit=order.take_profit)
    try:
        wallet = trading_wallet(user_id=order.user_id, address=account_ref)
        quote = price_for_execution(order.symbol)
        trade = call_provider(provider, venue.open_trade, order=request, market_price=quote.mid)
        venue_wallet_fund(order=order, provider=provider, venue=venue, wallet=wallet, account_ref=account_ref)
        tx_hash = wallet_trade_send(venue=venue, wallet=wallet, trade=trade, collateral=order.collateral)
    except ApplicationError as exc:
        attempts.append({"provider": provider, "error": exc.message})
        code = str(exc.details.get("code") or exc.code)
        return order_reject(
            order_id=order.pk, code=code, reason=exc.message, attempts=attempts, provider=provider
        )
    except ProviderError as exc:
        reverted = venue.revert_reason(exc)
        reason = f"the transaction would revert: {reverted}" if reverted else exc.message
        attempts.append({"provider": provider, "error": reason})
        return order_reject(
            order_id=order.pk, code="venue_rejected", reason=reason, attempts=attempts, provider=provider
        )
    Order.objects.filter(pk=order.pk).update(venue_client_order_id=tx_hash)
    attempts.append({"provider": provider, "status": str(VenueOrderStatus.PENDING), "tx_hash": tx_hash})
    recorded = order_venue_answer_record(
        order_id=order.pk,
        provider=provider,
        venue_order=VenueOrder(venue_order_id="", client_order_id=tx_hash, status=VenueOrderStatus.PENDING),
        attempts=attempts,
    )
    return order_poll(order_id=recorded.pk, just_acknowledged=True)


def _order_mark_unknown(order: Order, provider: str, attempts: list[dict[str, str]]) -> Order:
    with transaction.atomic():
        row = Order.objects.select_for_update(no_key=True).get(pk=order.pk)
        if row.status != Order.Status.PENDING:
            return row
        row.status = Order.Status.UNKNOWN
        row.provider = provider
        row.routing = {**row.routing, "attempts": attempts}
        row.resource_version += 1
        row.save(update_fields=["status", "provider", "routing", "resource_version", "updated_at"])
        publish(user_id=row.user_id, type="order.updated", data=order_data(row))
        return row


def order_venue_answer_record(
    *, order_id: Any, provider: str, venue_order: VenueOrder, attempts: list[dict[str, str]] | None = None
) -> Order:
    """What the venue said about an order: filled (position), rejected (collateral back), or still working."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(no_key=True, of=("self",)).select_related("user").get(pk=order_id)
        )
        return _order_answer_record(order, provider=provider, venue_order=venue_order, attempts=attempts)


def _order_answer_record(
    order: Order,
    *,
    provider: str,
    venue_order: VenueOrder,
    attempts: list[dict[str, str]] | None,
    risk: RiskProfile | None = None,
    held: LockedForFill | None = None,
) -> Order:
    """``order_venue_answer_record`` on a row locked by the caller's transaction (no savepoint of
    its own: a failure here fails the caller's transaction, which records the order)."""
    with transaction.atomic(savepoint=False):
        if order.status not in (Order.Status.PENDING, Order.Status.UNKNOWN, Order.Status.OPEN):
            return order
        order.provider = provider
        if attempts is None:  # a later answer (a poll): the attempt that got through now says it
            attempts = _attempts_answered(order, provider, str(venue_order.status))
        order.routing = {**order.routing, "attempts": attempts}
        if venue_order.status in ("filled", "partially_filled") and venue_order.filled_size > 0:
            # saves provider, routing
            order_fill_open(order=order, venue_order=venue_order, risk=risk, locked=held)
            return order
        if venue_order.status in ("rejected", "cancelled"):
            order.save(update_fields=["provider", "routing", "updated_at"])
            return order_reject(
                order_id=order.pk,
                code="venue_rejected",
                reason=venue_order.reject_reason or venue_order.status,
            )
        # Still working at the venue (pending, accepted, open): the poller asks again later.
        order.venue_order_id = venue_order.venue_order_id
        if order.status == Order.Status.UNKNOWN:
            order.status = Order.Status.PENDING
        poll_schedule(order)
        order.resource_version += 1
        order.save(
            update_fields=[
                "status",
                "provider",
                "routing",
                "venue_order_id",
                "next_poll_at",
                "poll_attempts",
                "resource_version",
                "updated_at",
            ]
        )
        return order


def _attempts_answered(order: Order, provider: str, status: str) -> list[dict[str, str]]:
    """The routing attempts, the last one (the venue that took the order) with the venue's
    latest ``status``, so that it reads what became of the order there."""
    attempts: list[dict[str, str]] = [dict(a) for a in order.routing.get("attempts", [])]
    if attempts and attempts[-1].get("provider") == provider and "status" in attempts[-1]:
        attempts[-1]["status"] = status
    return attempts


def order_reject(
    *,
    order_id: Any,
    code: str,
    reason: str,
    attempts: list[dict[str, str]] | None = None,
    provider: str | None = None,
) -> Order:
    """Mark a pending order rejected and give its locked collateral and fee back."""
    with transaction.atomic():
        order = Order.objects.select_for_update(no_key=True).get(pk=order_id)
        if order.status in (Order.Status.REJECTED, Order.Status.CANCELLED, Order.Status.FILLED):
            return order
        _release(order, kind=TransactionKind.ORDER_COLLATERAL_RELEASE)
        order.status = Order.Status.REJECTED
        order.reject_code = code
        order.reject_reason = reason
        if provider:
            order.provider = provider
        if attempts is not None:
            order.routing = {**order.routing, "attempts": attempts}
        order.resource_version += 1
        order.save(
            update_fields=[
                "status",
                "reject_code",
                "reject_reason",
                "provider",
                "routing",
                "resource_version",
                "updated_at",
            ]
        )
        publish(user_id=order.user_id, type="order.rejected", data=order_data(order))
        return order


def _release(order: Order, *, kind: str) -> None:
    amount = order.collateral + order.fee_reserved
    if order.purpose != Order.Purpose.OPEN or not amount:
        return
    accounts = ledger_accounts_for_user(user=order.user)
    ledger_transaction_post(
        kind=kind,
        legs=[(accounts.margin, -amount), (accounts.available, amount)],
        reference=f"order:{order.pk}",
        memo=f"release {order.symbol}",
    )


def order_cancel(*, order_id: Any, user: User) -> Order:
    """Cancel a resting limit order; its collateral and fee go back to available."""
    with transaction.atomic():
        try:
            order = Order.objects.select_for_update(no_key=True).get(pk=order_id, user=user)
        except (Order.DoesNotExist, ValueError):
            raise OrderNotFound(details={"order_id": str(order_id)}) from None
        if order.status != Order.Status.OPEN:
            raise OrderNotCancellable(details={"status": order.status})
        _release(order, kind=TransactionKind.ORDER_COLLATERAL_RELEASE)
        order.status = Order.Status.CANCELLED
        order.resource_version += 1
        order.save(update_fields=["status", "resource_version", "updated_at"])
        publish(user_id=order.user_id, type="order.cancelled", data=order_data(order))
        transaction.on_commit(partial(order_unindex, order.pk))
        return order


@transaction.atomic
def orders_resting_cancel_for_user(*, user: User) -> int:
    """Cancel every limit order of ``user`` resting in our book (``open``, to open or to close a
    position), each as ``order_cancel`` does: collateral and fee back to available,
    ``order.cancelled`` published. Returns how many were cancelled; a second call finds none.

    The position's stop-loss, take-profit and trailing stop stay armed. An order that is
    executing (``pending``: the market reached it and it is at the venue) is not ours to cancel
    any more and is left alone; so is one that stopped resting between the read and its row
    lock, which is logged while the others still go.
    """
    resting = Order.objects.filter(user=user, type=Order.Type.LIMIT, status=Order.Status.OPEN).order_by("pk")
    cancelled = 0
    for order_id in list(resting.values_list("pk", flat=True)):
        try:
            order_cancel(order_id=order_id, user=user)
        except ApplicationError as exc:
            logger.warning(
                "resting order %s not cancelled: %s",
                order_id,
                exc,
                extra={"order_id": str(order_id), "code": exc.code},
            )
            continue
        cancelled += 1
    return cancelled


def order_limit_execute(*, order_id: Any) -> Order | None:
    """A resting limit order whose price the market crossed: open at market, or close its
    position. Exactly once: the order moves from ``open`` to ``pending`` under its row lock."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(no_key=True).filter(pk=order_id, status=Order.Status.OPEN).first()
        )
        if order is None:
            return None
        order.status = Order.Status.PENDING
        order.resource_version += 1
        order.save(update_fields=["status", "resource_version", "updated_at"])
    if order.purpose == Order.Purpose.OPEN:
        return order_execute(order_id=order.pk)
    try:
        closed = position_close(
            position_id=order.position_id, size=order.size, closed_by="limit", resting_order=order
        )
    except PositionClosing:  # another close is pending at the venue: rest until it is done
        _limit_reopen(order)
        return None
    except ApplicationError:
        _limit_reopen(order)
        raise
    if closed is None:
        with transaction.atomic():
            row = Order.objects.select_for_update(no_key=True).get(pk=order.pk)
            row.status = Order.Status.CANCELLED
            row.resource_version += 1
            row.save(update_fields=["status", "resource_version", "updated_at"])
            publish(user_id=row.user_id, type="order.cancelled", data=order_data(row))
        return row
    return closed


def _limit_reopen(order: Order) -> None:
    """The close failed at the venue: the limit order rests again, for the next tick or sweep."""
    with transaction.atomic():
        reopened = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
            status=Order.Status.OPEN, resource_version=F("resource_version") + 1
        )
        if reopened:
            transaction.on_commit(partial(order_index, order.pk))


def position_close_limit(
    *, position_id: Any, user: User, price: Decimal, size: Decimal | None, rounding: str | None
) -> Order:
    """A limit close: rests in our book and closes at market once the price reaches ``price``."""
    with transaction.atomic():
        position = position_lock(position_id=position_id, user=user)
        if position.status != Position.Status.OPEN:
            raise PositionNotOpen(details={"position_id": str(position.pk)})
        listing = PairListing.objects.filter(pair__symbol=position.symbol, provider=position.provider).first()
        applied: dict[str, Any] = {}
        accepted = _on_tick("price", price, listing.tick_size if listing else Decimal(0), rounding, applied)
        order = Order.objects.create(
            user=user,
            symbol=position.symbol,
            category=position.category,
            side=position.side,
            type=Order.Type.LIMIT,
            purpose=Order.Purpose.CLOSE,
            status=Order.Status.OPEN,
            price=accepted,
            size=close_size(position, size, rounding),
            provider=position.provider,
            position=position,
            closed_by="limit",
            rounding=rounding or "",
            routing={"reason": "the position's venue", "attempts": []},
        )
        publish(user_id=user.pk, type="order.created", data=order_data(order))
        _after_commit_index(order.pk)
        return order


def order_poll(*, order_id: Any, just_acknowledged: bool = False) -> Order:
    """Ask the venue, by client id, about an order that is pending there or whose answer was
    lost, and record its answer once (filled, rejected, or still working: polled again later).
    A venue that has no such order never received it: the order is rejected, collateral back;
    except right after the venue acknowledged it (``just_acknowledged``): a venue that
    executes after acknowledging (Lighter's sequencer) lists it only once executed, so it
    stays pending for the next poll.
    A venue that does not answer leaves the order as it is, for the next poll."""
    order = Order.objects.select_related("user").get(pk=order_id)
    if order.status not in (Order.Status.PENDING, Order.Status.UNKNOWN):
        return order
    if order.purpose == Order.Purpose.CLOSE:
        return position_close_poll(order_id=order.pk)
    try:
        venue_order = call_provider(
            order.provider,
            registry.venue(order.provider).get_order,
            account_ref=venue_account_ref(user=order.user, provider=order.provider),
            client_order_id=order.venue_client_order_id or str(order.pk),
        )
    except ProviderError as exc:
        logger.warning("order %s: %s did not answer: %s", order.pk, order.provider, exc.message)
        return order
    if venue_order is None and just_acknowledged:
        return order
    if venue_order is None:
        return order_reject(
            order_id=order.pk, code="venue_never_received", reason="the venue has no such order"
        )
    return order_venue_answer_record(order_id=order.pk, provider=order.provider, venue_order=venue_order)


def orders_reconcile(*, older_than: timedelta = RECONCILE_AFTER) -> int:
    """Ask the venues about every order whose outcome we do not know yet, opening or closing:
    those pending at the venue once their next look-up is due (backing off), and those left
    ``pending`` or ``unknown`` without an answer for ``older_than``. Returns how many were settled."""
    now = timezone.now()
    due = Q(next_poll_at__lte=now) | Q(next_poll_at__isnull=True, updated_at__lt=now - older_than)
    settled = 0
    for order_id in (
        Order.objects.filter(status__in=[Order.Status.UNKNOWN, Order.Status.PENDING])
        .exclude(provider="")
        .filter(due)
        .order_by("created_at")
        .values_list("pk", flat=True)
    ):
        try:
            polled = order_poll(order_id=order_id)
        except ApplicationError as exc:  # this order stays for the next pass; the others still go
            logger.warning("reconcile: order %s not settled: %s", order_id, exc, extra={"code": exc.code})
            continue
        if polled.status not in (Order.Status.PENDING, Order.Status.UNKNOWN):
            settled += 1
    return settled
