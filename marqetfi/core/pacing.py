"""Pacing for background passes that share cores with the web processes.

A consistency pass (reconciliation over every account, say) is cheap per item but runs as
one burst: on a small machine the web processes then wait for a core for seconds, and every
request in flight meanwhile is slow. ``DutyCyclePacer`` spreads such a pass out instead: the
pass calls it after each item, and whenever the pass has worked for ``slice_seconds`` the
pacer sleeps long enough that the pass uses at most ``duty`` of its wall time (0.25: a
quarter of a core, and four times as long). It never sleeps past ``deadline`` (a monotonic
time), so the pass still ends before the next one is due; after the deadline it runs flat out.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class DutyCyclePacer:
    def __init__(
        self,
        *,
        duty: float,
        deadline: float,
        slice_seconds: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < duty <= 1:
            raise ValueError("duty must be in (0, 1]")
        self.duty = duty
        self.deadline = deadline
        self.slice_seconds = slice_seconds
        self._clock = clock
        self._sleep = sleep
        self._since = clock()
        self._worked = 0.0
        self.slept = 0.0

    def step(self) -> None:
        """One item is done: sleep if the pass has worked a whole slice since it last slept."""
        now = self._clock()
        self._worked += now - self._since
        self._since = now
        if self.duty >= 1 or self._worked < self.slice_seconds:
            return
        pause = min(self._worked * (1 - self.duty) / self.duty, self.deadline - now)
        self._worked = 0.0
        if pause > 0:
            self._sleep(pause)
            self.slept += pause
        self._since = self._clock()
