"""Dispatchers that tests plug into settings.EVENT_DISPATCHERS (the outbox's real extension point)."""

from __future__ import annotations

from collections.abc import Sequence

from marqetfi.core.models import Event

received: list[tuple[str, int]] = []
batches: list[int] = []  # how many events each hand-over carried


def record(events: Sequence[Event]) -> None:
    received.extend((event.type, event.seq) for event in events)
    batches.append(len(events))


def broken(events: Sequence[Event]) -> None:
    raise ConnectionError("receiver unreachable")


handed: list[Event] = []  # the event objects themselves, as dispatchers get them


def keep(events: Sequence[Event]) -> None:
    handed.extend(events)
