"""The arithmetic of a leveraged position: sizes on the pair's step, fees, liquidation and stops.

Pure functions of Decimals, shared by the preview, the execution and the trigger engine so
that what a trader is shown is what is done.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Final

from marqetfi.core.app_settings.cache import app_setting
from trading.app_settings import TRADING_FEE_RATE

USDC_STEP: Final = Decimal("0.000001")
PRICE_STEP: Final = Decimal(1).scaleb(-18)
LONG: Final = "long"
SHORT: Final = "short"
ROUNDING_MODES: Final = {"down": ROUND_DOWN, "nearest": ROUND_HALF_EVEN}


def usdc(value: Decimal) -> Decimal:
    """An amount of USDC on its 6 decimals, half to even."""
    return value.quantize(USDC_STEP, ROUND_HALF_EVEN)


def usdc_up(value: Decimal) -> Decimal:
    """Rounded up to the next micro-USDC: what the platform charges is never rounded in its disfavour."""
    return value.quantize(USDC_STEP, ROUND_CEILING)


def on_step(value: Decimal, step: Decimal) -> bool:
    return step > 0 and (value % step) == 0


def to_step(value: Decimal, step: Decimal, rounding: str = ROUND_DOWN) -> Decimal:
    """``value`` on a multiple of ``step`` (down by default), without trailing zeros."""
    if step <= 0:
        return value
    return ((value / step).to_integral_value(rounding) * step).normalize() + 0


def to_step_if_asked(value: Decimal, step: Decimal, rounding: str | None) -> Decimal | None:
    """``value`` if it is on ``step``; rounded onto it when the client sent ``rounding``
    ("down" or "nearest"); None when it is off the step and no rounding was asked for."""
    if on_step(value, step):
        return value
    if rounding not in ROUNDING_MODES:
        return None
    return to_step(value, step, ROUNDING_MODES[rounding])


def fee_for(notional: Decimal) -> Decimal:
    """The platform's fee on a fill of this notional (the ``trading_fee_rate`` app setting)."""
    return usdc_up(notional * app_setting(TRADING_FEE_RATE))


def size_for(*, collateral: Decimal, leverage: Decimal, price: Decimal, size_step: Decimal) -> Decimal:
    """What collateral x leverage buys at ``price``, down to the pair's size step."""
    return to_step(collateral * leverage / price, size_step, ROUND_FLOOR)


def loss_price(
    *, side: str, entry: Decimal, size: Decimal, collateral: Decimal, level: Decimal
) -> Decimal | None:
    """The price at which the position's loss leaves ``level`` of its collateral (None: never, for
    a long whose collateral covers a fall to zero)."""
    if size <= 0:
        return None
    move = collateral * (1 - level) / size
    price = entry - move if side == LONG else entry + move
    if price <= 0:
        return None
    return price.quantize(PRICE_STEP, ROUND_HALF_EVEN).normalize() + 0


def pnl(*, side: str, entry: Decimal, exit_price: Decimal, size: Decimal) -> Decimal:
    """Profit (negative: loss) of ``size`` bought at ``entry`` and sold at ``exit_price``, in USDC."""
    move = exit_price - entry
    return usdc((move if side == LONG else -move) * size)


def closing_price(*, side: str, bid: Decimal, ask: Decimal) -> Decimal:
    """The side of the book a position closes on: a long sells at the bid, a short buys at the ask."""
    return bid if side == LONG else ask


def opening_price(*, side: str, bid: Decimal, ask: Decimal) -> Decimal:
    return ask if side == LONG else bid


def stop_is_protective(*, side: str, entry: Decimal, stop: Decimal) -> bool:
    """A stop-loss sits below a long's entry and above a short's."""
    return stop < entry if side == LONG else stop > entry


def target_is_profitable(*, side: str, entry: Decimal, target: Decimal) -> bool:
    return target > entry if side == LONG else target < entry


def stop_before_liquidation(*, side: str, stop: Decimal, liquidation: Decimal | None) -> bool:
    """The stop fires before the liquidation would (a long's stop above its liquidation price)."""
    if liquidation is None:
        return True
    return stop > liquidation if side == LONG else stop < liquidation


def trailing_stop_price(
    *, side: str, best: Decimal, percent: Decimal | None, distance: Decimal | None
) -> Decimal:
    """Where a trailing stop sits given the best price since it was armed."""
    if percent is not None:
        offset = best * percent / 100
    else:
        assert distance is not None
        offset = distance
    stop = best - offset if side == LONG else best + offset
    return stop.quantize(PRICE_STEP, ROUND_HALF_EVEN).normalize() + 0
