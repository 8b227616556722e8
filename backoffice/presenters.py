"""Charts of the dashboard as server-side SVG geometry: bars per day, drawn by the template.

No chart script is shipped: the page is plain HTML and inline SVG, so it loads no file beyond
the admin's own stylesheets, renders without JavaScript and its figures can be read in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

WIDTH: Final = 720
HEIGHT: Final = 160
AXIS_LABEL_GAP: Final = 18


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: Decimal | int
    negative: bool


@dataclass(frozen=True)
class BarChart:
    title: str
    unit: str
    bars: list[Bar]
    width: int
    height: int
    baseline_y: float  # where zero is, for charts with negative values
    maximum: Decimal | int
    minimum: Decimal | int
    total: Decimal | int
    first: date | None
    last: date | None


def bar_chart(title: str, series: Sequence[tuple[date, Decimal | int]], *, unit: str = "") -> BarChart:
    """One bar per day scaled to the largest magnitude; negative values hang below zero."""
    values = [value for _, value in series]
    top = max([0, *values])
    bottom = min([0, *values])
    span = float(top - bottom) or 1.0
    plot = HEIGHT - AXIS_LABEL_GAP
    baseline = plot * float(top) / span
    slot = WIDTH / max(len(series), 1)
    gap = min(2.0, slot * 0.2)
    bars = []
    for index, (day, value) in enumerate(series):
        size = plot * abs(float(value)) / span
        bars.append(
            Bar(
                x=round(index * slot + gap / 2, 2),
                y=round(baseline - size if value >= 0 else baseline, 2),
                width=round(slot - gap, 2),
                height=round(size, 2),
                day=day,
                value=value,
                negative=value < 0,
            )
        )
    return BarChart(
        title=title,
        unit=unit,
        bars=bars,
        width=WIDTH,
        height=HEIGHT,
        baseline_y=round(baseline, 2),
        maximum=top,
        minimum=bottom,
        total=sum(values, type(values[0])(0)) if values else 0,
        first=series[0][0] if series else None,
        last=series[-1][0] if series else None,
    )
