from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pricing.feed import PriceFeed


class Command(BaseCommand):
    help = (
        "Keep every active pair's price hot: stream the venues that can (Lighter), poll the others "
        "and a stream's pairs while it is down; cache, fan out ticks, run tick hooks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between polling rounds")
        parser.add_argument("--once", action="store_true", help="run one polling round and exit")
        parser.add_argument(
            "--no-stream", action="store_true", help="poll every venue, even those that can stream"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        feed = PriceFeed(interval=options["interval"], stream=not options["no_stream"])
        if options["once"]:
            ticks = feed.run_once()
            self.stdout.write(f"{ticks} ticks ingested")
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            feed.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        feed.run_forever()
