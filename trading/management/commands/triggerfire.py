from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trading.triggers.consumer import TriggerFirer


class Command(BaseCommand):
    help = (
        "Fire the triggers that price ticks enqueued (the firing queue's partition streams), in "
        "order per position, each exactly once. Several may run: each partition is drained by "
        "one of them at a time, and a dead one's partitions pass to the others."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--partitions",
            default="",
            help="comma-separated partition numbers to take (default: every one it can)",
        )
        parser.add_argument("--batch", type=int, default=100, help="entries read per call")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            wanted = [int(p) for p in options["partitions"].split(",") if p.strip()]
        except ValueError as exc:
            raise CommandError("--partitions takes numbers, e.g. 0,2") from exc
        firer = TriggerFirer(partitions_wanted=wanted or None, batch=options["batch"])

        def stop(signum: int, frame: FrameType | None) -> None:
            firer.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        firer.run_forever()
