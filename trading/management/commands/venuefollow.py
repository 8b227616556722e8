from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from trading.follower import VenueFollower


class Command(BaseCommand):
    help = (
        "Follow the venues that push order outcomes (Lighter's account stream, polling while it is "
        "down) for every account with orders pending there or native stops armed, and record "
        "each outcome (fills, rejections, native stops fired)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between supervising rounds")
        parser.add_argument(
            "--linger", type=float, default=30.0, help="seconds an account is followed after its last order"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        follower = VenueFollower(interval=options["interval"], linger=options["linger"])

        def stop(signum: int, frame: FrameType | None) -> None:
            follower.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        follower.run_forever()
