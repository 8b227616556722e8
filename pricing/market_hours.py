"""When a market is open, from a weekly table in UTC.

Crypto trades around the clock. Forex, indices and commodities follow the forex week:
closed from Friday 21:00 UTC to Sunday 21:00 UTC (New York 17:00 close to the Sydney
open; the hour moves by one with daylight saving, which this table ignores on purpose:
the venue's own ``market_open`` flag on each quote is the finer check). Exchange holidays
are not in the table either, for the same reason.

A pair's ``trading_hours`` (``"24/7"`` or ``"weekdays"``) picks the schedule; a category
name is accepted too and maps to its usual schedule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

MarketState = Literal["open", "closed"]

MINUTES_PER_DAY: Final = 24 * 60
FRIDAY, SUNDAY = 4, 6

# Weekly closed windows per schedule: (start, end) as (weekday, hour) in UTC, start inclusive,
# end exclusive; Monday is weekday 0 and a window may not wrap past Sunday midnight.
WEEKLY_CLOSURES: Final[dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], ...]]] = {
    "24/7": (),
    "weekdays": (((FRIDAY, 21), (SUNDAY, 21)),),
}

SCHEDULE_OF_CATEGORY: Final[dict[str, str]] = {
    "crypto": "24/7",
    "forex": "weekdays",
    "indices": "weekdays",
    "commodities": "weekdays",
}


def schedule_for(category_or_hours: str) -> str:
    """The schedule name (a key of ``WEEKLY_CLOSURES``) for a pair's hours or its category."""
    if category_or_hours in WEEKLY_CLOSURES:
        return category_or_hours
    try:
        return SCHEDULE_OF_CATEGORY[category_or_hours]
    except KeyError:
        raise ValueError(f"unknown trading hours or category: {category_or_hours!r}") from None


def _minute_of_week(weekday: int, hour: int, minute: int = 0) -> int:
    return weekday * MINUTES_PER_DAY + hour * 60 + minute


def market_open(category_or_hours: str, at: datetime) -> bool:
    """Whether the schedule of ``category_or_hours`` is open at ``at`` (an aware datetime)."""
    if at.tzinfo is None:
        raise ValueError("market_open needs an aware datetime")
    moment = at.astimezone(UTC)
    now = _minute_of_week(moment.weekday(), moment.hour, moment.minute)
    for (start_day, start_hour), (end_day, end_hour) in WEEKLY_CLOSURES[schedule_for(category_or_hours)]:
        if _minute_of_week(start_day, start_hour) <= now < _minute_of_week(end_day, end_hour):
            return False
    return True


def market_state(category_or_hours: str, at: datetime) -> MarketState:
    return "open" if market_open(category_or_hours, at) else "closed"
