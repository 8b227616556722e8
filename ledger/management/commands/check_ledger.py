from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ledger.checks import ledger_check


class Command(BaseCommand):
    help = (
        "Check the ledger's invariants: balanced transactions, a zero total, stored balances equal "
        "to their entries, no user below zero. Prints OK or each problem; exits 1 on problems."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger_check()
        if not problems:
            self.stdout.write(self.style.SUCCESS("OK"))
            return
        for problem in problems:
            self.stdout.write(self.style.ERROR(problem))
        raise CommandError(f"{len(problems)} problem(s) found in the ledger.")
