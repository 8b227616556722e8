"""``DutyCyclePacer``: a pass that calls it after each item uses at most its share of a core,
and never sleeps past its deadline. The clock and the sleep are a fake clock's, so the test
checks the schedule, not the machine's speed."""

from __future__ import annotations

import pytest

from marqetfi.core.pacing import DutyCyclePacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _run(pacer: DutyCyclePacer, clock: FakeClock, items: int, work: float) -> None:
    for _ in range(items):
        clock.now += work
        pacer.step()


def test_a_quarter_duty_sleeps_three_times_the_work() -> None:
    clock = FakeClock()
    pacer = DutyCyclePacer(duty=0.25, deadline=1000, slice_seconds=0.045, clock=clock, sleep=clock.sleep)
    _run(pacer, clock, items=100, work=0.01)  # 1 s of work, in slices of 5 items
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert clock.now == pytest.approx(4.0)
    assert len(clock.sleeps) == 20, "one sleep per slice, not one per item"
    assert pacer.slept == pytest.approx(3.0)


def test_no_sleep_past_the_deadline() -> None:
    clock = FakeClock()
    pacer = DutyCyclePacer(duty=0.1, deadline=2.0, slice_seconds=0.045, clock=clock, sleep=clock.sleep)
    _run(pacer, clock, items=200, work=0.01)  # 2 s of work: at 10 % it would take 20 s
    # Four slices of 50 ms, each followed by 450 ms asleep, reach the deadline (2.0 s); the
    # rest of the work runs flat out.
    assert clock.sleeps == pytest.approx([0.45] * 4)
    assert clock.now == pytest.approx(2.0 + 1.8)


def test_a_full_duty_never_sleeps() -> None:
    clock = FakeClock()
    pacer = DutyCyclePacer(duty=1, deadline=1000, clock=clock, sleep=clock.sleep)
    _run(pacer, clock, items=100, work=0.01)
    assert clock.sleeps == []


@pytest.mark.parametrize("duty", [0, -0.5, 1.5])
def test_a_duty_outside_zero_to_one_is_refused(duty: float) -> None:
    with pytest.raises(ValueError):
        DutyCyclePacer(duty=duty, deadline=0)
