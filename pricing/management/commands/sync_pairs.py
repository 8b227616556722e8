from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pricing.services.pairs import PairsSyncResult, pairs_sync, pairs_sync_all
from providers.errors import ProviderError


class Command(BaseCommand):
    help = "Sync the pair catalogue from every venue that is on, or from --provider only."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", help="Sync this venue only (fails if it cannot be asked).")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = options.get("provider")
        results: list[PairsSyncResult]
        if provider:
            try:
                results = [pairs_sync(provider=provider)]
            except ProviderError as exc:
                raise CommandError(f"{provider}: not synced ({exc.message})") from exc
        else:
            results = pairs_sync_all()
        for result in results:
            style = self.style.WARNING if result.error else self.style.SUCCESS
            self.stdout.write(style(str(result)))
