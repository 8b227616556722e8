from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from providers.services.configs import secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (provider configs, local wallet keys) under the first key "
        "of FIELD_ENCRYPTION_KEYS. Put the new key first, run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = secrets_reencrypt()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} secret value(s) under the newest key."))
