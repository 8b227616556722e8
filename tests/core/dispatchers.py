"""Dispatchers that tests plug into settings.EVENT_DISPATCHERS (the outbox's real extension point)."""

from __future__ import annotations

from marqetfi.core.models import Event

received: list[tuple[str, int]] = []


def record(event: Event) -> None:
    received.append((event.type, event.seq))


def broken(event: Event) -> None:
    raise ConnectionError("receiver unreachable")
