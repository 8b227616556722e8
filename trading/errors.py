"""Rejections of orders, position changes and risk-limit changes, each with a stable code (API.md).

A rejection is raised before anything is written, so a rejected request changes nothing.
"""

from __future__ import annotations

from marqetfi.core.errors import ApplicationError, ConflictError, NotFoundError


class OrderRejected(ApplicationError):
    """Base of the pre-trade rejections (400 unless said otherwise)."""

    code = "order_rejected"
    status_code = 400


class LeverageLimitExceeded(OrderRejected):
    code = "leverage_limit_exceeded"
    default_message = "The leverage asked for is above the limit for this pair or account."


class PositionSizeExceeded(OrderRejected):
    code = "position_size_exceeded"
    default_message = "The position would be larger than the limit for this pair or account."


class TooManyPositions(OrderRejected):
    code = "too_many_positions"
    default_message = "The account already has the maximum number of open positions."


class CollateralTooSmall(OrderRejected):
    code = "collateral_below_minimum"
    default_message = "The collateral is below the pair's minimum."


class SizeTooSmall(OrderRejected):
    code = "size_below_step"
    default_message = "Collateral x leverage buys less than one size step of this pair at this price."


class PriceOffTick(OrderRejected):
    code = "price_off_tick"
    default_message = (
        'A price is not a multiple of the pair\'s tick size; send "rounding" to have it rounded.'
    )


class SizeOffStep(OrderRejected):
    code = "size_off_step"
    default_message = (
        'The size is not a multiple of the pair\'s size step; send "rounding" to have it rounded.'
    )


class InvalidStopSide(OrderRejected):
    code = "invalid_stop_side"
    default_message = "A stop-loss or take-profit is on the wrong side of the entry price."


class StopBeyondLiquidation(OrderRejected):
    code = "stop_beyond_liquidation"
    default_message = "The stop-loss lies beyond the liquidation price; it would never fire."


class InvalidTrailingStop(OrderRejected):
    code = "invalid_trailing_stop"
    default_message = 'A trailing stop is {"percent": "0.1".."50"} or {"distance": "<positive price>"}.'


class LimitPriceRequired(OrderRejected):
    code = "limit_price_required"
    default_message = "A limit order needs a price; a market order takes none."


class VenueError(ApplicationError):
    """The venue refused or failed a close; nothing changed on our side."""

    code = "venue_error"
    status_code = 502
    default_message = "The venue did not carry this out; nothing changed. Try again."


class TradingDisabled(ConflictError):
    code = "trading_disabled"
    default_message = "Trading is switched off for this account."


class OrderNotFound(NotFoundError):
    code = "order_not_found"
    default_message = "No such order."


class PositionNotFound(NotFoundError):
    code = "position_not_found"
    default_message = "No such position."


class OrderNotCancellable(ConflictError):
    code = "order_not_cancellable"
    default_message = "Only a resting order can be cancelled."


class PositionNotOpen(ConflictError):
    code = "position_not_open"
    default_message = "The position is already closed."


class PositionClosing(PositionNotOpen):
    code = "position_closing"
    default_message = "A close of this position is pending at the venue; wait for its outcome."


class IdempotencyKeyReused(ConflictError):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used with a different request."


class ClientOrderIdReused(IdempotencyKeyReused):
    default_message = "This client_order_id was used for a different order."


class IdempotentRequestInProgress(ConflictError):
    code = "idempotent_request_in_progress"
    default_message = "A request with this Idempotency-Key is still being processed."


class InvalidRiskLimit(ApplicationError):
    code = "invalid_risk_limit"
    status_code = 400
    default_message = "The risk limit is not valid."


class RiskLimitExists(ConflictError):
    code = "risk_limit_exists"
    default_message = "A risk limit for this user and pair exists already: change it instead."


class RiskLimitNotFound(NotFoundError):
    code = "risk_limit_not_found"
    default_message = "No such risk limit."


class ReconciliationDriftNotFound(NotFoundError):
    code = "reconciliation_drift_not_found"
    default_message = "No such reconciliation drift."


class ReconciliationDriftNotOpen(ConflictError):
    code = "reconciliation_drift_not_open"
    default_message = "The drift is already repaired or resolved."


class OneTradePerMarket(ConflictError):
    """At a venue traded from the wallet (Ostium) every open is a trade of its own, while our
    book keeps one position per market and side: a second one is refused."""

    code = "position_exists"
    default_message = (
        "This venue keeps each open as a separate trade: close the open position on this market "
        "and side first."
    )
