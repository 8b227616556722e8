"""Price tick hooks for ``settings.PRICE_TICK_HOOKS`` in tests: one records, one breaks."""

from __future__ import annotations

from pricing.services.prices import PriceTick

RECEIVED: list[PriceTick] = []


def record(tick: PriceTick) -> None:
    RECEIVED.append(tick)


def explode(tick: PriceTick) -> None:
    raise RuntimeError("a hook with a bug")
