from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from trading.triggers.consumer import firers_run


class Command(BaseCommand):
    help = (
        "Fire the triggers that price ticks enqueued (the firing queue's partition streams), in "
        "order per position, each exactly once. One process fires --concurrency partitions in "
        "parallel (threads); several may run: each partition is drained by one consumer at a "
        "time, and a dead one's partitions pass to the others."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--partitions",
            default="",
            help="comma-separated partition numbers to take (default: every one it can)",
        )
        parser.add_argument("--batch", type=int, default=100, help="entries read per call")
        parser.add_argument(
            "--concurrency",
            type=int,
            default=None,
            help="consumer threads, each draining its share of the partitions "
            "(default TRIGGER_FIRE_CONCURRENCY)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            wanted = [int(p) for p in options["partitions"].split(",") if p.strip()]
        except ValueError as exc:
            raise CommandError("--partitions takes numbers, e.g. 0,2") from exc
        concurrency = options["concurrency"] or settings.TRIGGER_FIRE_CONCURRENCY
        if concurrency < 1:
            raise CommandError("--concurrency takes a positive number")
        stop_event = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        firers_run(
            concurrency=concurrency,
            partitions_wanted=wanted or None,
            batch=options["batch"],
            stop_event=stop_event,
        )
