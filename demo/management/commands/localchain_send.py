from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from demo.localchain.devstack import STATE_FILE, devstack_send, devstack_state_read


class Command(BaseCommand):
    help = (
        "Send test tokens (or ETH) from the developer account of the running local chain; prints the tx hash."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", required=True, help="recipient address (0x...)")
        parser.add_argument("--token", default="USDC", help="USDC, USDT or ETH (default USDC)")
        parser.add_argument("--amount", required=True, help="whole tokens, e.g. 100 or 0.5")
        parser.add_argument("--state-file", type=Path, default=STATE_FILE)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            amount = Decimal(options["amount"])
        except InvalidOperation as exc:
            raise CommandError(f"--amount {options['amount']!r} is not a number") from exc
        try:
            stack = devstack_state_read(options["state_file"])
        except FileNotFoundError as exc:
            raise CommandError(
                f"no local chain is running (no {options['state_file']}): start `make run` "
                "or `python manage.py localchain`"
            ) from exc
        symbol = options["token"].upper()
        try:
            tx_hash = devstack_send(stack=stack, to=options["to"], symbol=symbol, amount=amount)
        except KeyError as exc:
            known = ", ".join([*stack.tokens, stack.native_symbol])
            raise CommandError(f"unknown token {symbol}: use one of {known}") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(tx_hash)
