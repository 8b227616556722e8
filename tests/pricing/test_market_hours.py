"""The weekly table: crypto never closes; forex, indices and commodities close for the weekend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pricing.market_hours import market_open, market_state

# 2024-01-05 is a Friday.
FRIDAY = datetime(2024, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "weekdays_open"),
    [
        (FRIDAY + timedelta(hours=20, minutes=59), True),
        (FRIDAY + timedelta(hours=21), False),
        (FRIDAY + timedelta(days=1, hours=12), False),  # Saturday
        (FRIDAY + timedelta(days=2, hours=20, minutes=59), False),  # Sunday before the open
        (FRIDAY + timedelta(days=2, hours=21), True),  # Sunday open
        (FRIDAY + timedelta(days=3, hours=0), True),  # Monday
        (FRIDAY - timedelta(days=2), True),  # Wednesday
    ],
)
def test_weekday_markets_close_from_friday_to_sunday_21_utc(moment: datetime, weekdays_open: bool) -> None:
    for hours in ("weekdays", "forex", "indices", "commodities"):
        assert market_open(hours, moment) is weekdays_open
    assert market_open("crypto", moment) is True
    assert market_open("24/7", moment) is True


def test_other_time_zones_are_converted_to_utc() -> None:
    new_york = timezone(timedelta(hours=-5))
    friday_5pm_new_york = datetime(2024, 1, 5, 17, tzinfo=new_york)  # 22:00 UTC
    assert market_state("forex", friday_5pm_new_york) == "closed"
    assert market_state("forex", friday_5pm_new_york - timedelta(hours=2)) == "open"


def test_naive_datetimes_and_unknown_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        market_open("forex", datetime(2024, 1, 6))  # noqa: DTZ001
    with pytest.raises(ValueError, match="unknown"):
        market_open("stocks", FRIDAY)
