from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from demo.localchain.devstack import STATE_FILE, devstack_state_read
from demo.services import (
    demo_admin_ensure,
    demo_deposits_configure,
    demo_market_ensure,
    demo_trader_ensure,
)
from marqetfi.core.dev_secrets import dev_secret


class Command(BaseCommand):
    help = (
        "Load the demo data (idempotent): an admin user and a trader funded once with demo USDC, "
        "whose credentials are printed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        email = os.environ.get("DEMO_ADMIN_EMAIL", "admin@marqetfi.local")
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or dev_secret(
            settings.VAR_DIR / "demo_admin_password", make=lambda: secrets.token_urlsafe(12)
        )
        pairs = demo_market_ensure()
        self.stdout.write(f"Demo market: {pairs} pairs on the paper venue, routing rules in place")
        created = demo_admin_ensure(email=email, password=password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo admin {'created' if created else 'ready'}: {email} / {password}"
                "  (password kept in var/demo_admin_password)"
            )
        )

        trader_email = os.environ.get("DEMO_TRADER_EMAIL", "trader@marqetfi.local")
        trader_password = os.environ.get("DEMO_TRADER_PASSWORD") or dev_secret(
            settings.VAR_DIR / "demo_trader_password", make=lambda: secrets.token_urlsafe(12)
        )
        trader = demo_trader_ensure(email=trader_email, password=trader_password)
        funding = f", funded with {trader.funded:,} USDC" if trader.funded is not None else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo trader {'created' if trader.created else 'ready'}{funding}: "
                f"{trader_email} / {trader_password}  (password kept in var/demo_trader_password)"
            )
        )
        if STATE_FILE.exists():
            stack = devstack_state_read(STATE_FILE)
            changed = demo_deposits_configure(stack=stack)
            self.stdout.write(
                f"Deposits: local chain {stack.chain_id} at {stack.rpc_url}"
                f"{', LI-FI simulator at ' + stack.lifi_url if stack.lifi_url else ''}"
                f" ({'configured: ' + ', '.join(changed) if changed else 'already configured'})"
            )
