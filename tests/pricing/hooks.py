"""Price tick hooks for ``settings.PRICE_TICK_HOOKS`` in tests: one records, one breaks, one
records after a wait."""

from __future__ import annotations

import threading

from pricing.services.prices import PriceTick

RECEIVED: list[PriceTick] = []


def record(tick: PriceTick) -> None:
    RECEIVED.append(tick)


def explode(tick: PriceTick) -> None:
    raise RuntimeError("a hook with a bug")


# Ticks of GATED_SYMBOL wait in ``gated`` until GATE is set (a slow hook, such as a crash's).
GATE = threading.Event()
GATED_SYMBOL = "BTCUSD"


def gated(tick: PriceTick) -> None:
    if tick.symbol == GATED_SYMBOL:
        GATE.wait(10)
    RECEIVED.append(tick)
