"""Dashboard benchmark (run by hand: ``.venv/bin/python bench/dashboard.py``; not a test).

1. Fill. Uses ``DATABASE_URL`` (PostgreSQL: what it is meant for) and ``REDIS_URL``, migrates,
   and when the database does not yet hold the bench's data (or with ``--refill``, which first
   deletes it, with every fill, position, ledger entry, deposit and drift of the database: give
   it a database of its own) writes a year of it with ``bulk_create``: ``--users`` users (default 5,000)
   joined over the year, 10 positions each (a tenth still open) on three venues, ``--fills``
   fills (default 500,000) over the year with one ledger transaction each against the
   platform's fees or realized-P&L account, ``--deposits`` deposits (50,000) over the nine
   statuses, ``--deliveries`` webhook deliveries (200,000, 95% succeeded) with their events,
   and 2,000 reconciliation drifts. Then ``ANALYZE``.
2. Rollups. The daily rollups of the last 366 closed days dropped and built again, timed once
   (what the first page over a year, or the first nightly run, costs).
3. Profile. Each query of the 365-day dashboard (rollups stored), timed with ``EXPLAIN (ANALYZE)``.
4. Timings over ``--runs`` runs (default 7, after one warm-up): the selectors for 7, 30, 90 and
   365 days, the whole page (Django test client, staff signed in) for 30 and 365 days, and three
   baselines measured in the same run: ``SELECT count(*)`` on the fills, the admin index and the
   365-day selectors reading every day from the raw rows (no rollups: the previous design).

``--write`` appends the figures, with the machine and date, to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base")
os.environ.setdefault("DEBUG", "false")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import User  # noqa: E402
from backoffice.models import DailyFigure  # noqa: E402
from backoffice.selectors import dashboard_figures, dashboard_period  # noqa: E402
from backoffice.services import daily_figures_roll  # noqa: E402
from deposits.models import Deposit, DepositSource, DepositStatus  # noqa: E402
from ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction, TransactionKind  # noqa: E402
from ledger.services import platform_account  # noqa: E402
from marqetfi.core.models import Event  # noqa: E402
from trading.models import Fill, Position, ReconciliationDrift  # noqa: E402
from webhooks.models import WebhookDelivery, WebhookEndpoint  # noqa: E402

EMAIL_DOMAIN = "dashboard-bench.invalid"
VENUES = ("lighter", "ostium", "paper")
SYMBOLS = (
    ("BTCUSD", "crypto", 60000),
    ("ETHUSD", "crypto", 3000),
    ("EURUSD", "forex", 1),
    ("XAUUSD", "commodity", 2400),
)
BATCH = 5000
YEAR = timedelta(days=365)


def chunks(items: Iterator[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk(model: Any, rows: Iterator[Any]) -> int:
    count = 0
    for batch in chunks(rows):
        model.objects.bulk_create(batch, batch_size=BATCH)
        count += len(batch)
    return count


def log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", flush=True)


def bench_users() -> Any:
    return User.objects.filter(email__endswith=f"@{EMAIL_DOMAIN}")


def data_delete() -> None:
    users = list(bench_users().values_list("pk", flat=True))
    if not users:
        return
    log("deleting the previous bench data")
    with connection.cursor() as cursor:
        for sql in (
            "DELETE FROM ledger_ledgerentry",
            "DELETE FROM ledger_ledgertransaction",
            "DELETE FROM trading_fill",
            "DELETE FROM trading_position",
            "DELETE FROM trading_reconciliationdrift",
            "DELETE FROM deposits_deposit",
        ):
            cursor.execute(sql)
    WebhookDelivery.objects.filter(user_id__in=users).delete()
    WebhookEndpoint.objects.filter(user_id__in=users).delete()
    Event.objects.filter(user_id__in=users).delete()
    LedgerAccount.objects.filter(user_id__in=users).delete()
    bench_users().delete()


def data_fill(*, users: int, fills: int, deposits: int, deliveries: int) -> None:
    rng = random.Random(15)
    now = timezone.now()
    start = now - YEAR

    def moment() -> datetime:
        return start + timedelta(seconds=rng.uniform(0, YEAR.total_seconds()))

    started = time.monotonic()
    bulk(
        User,
        (User(email=f"user{n}@{EMAIL_DOMAIN}", password="!", date_joined=moment()) for n in range(users)),
    )
    people = list(bench_users().values_list("pk", flat=True))
    log(f"{len(people)} users")
    bulk(LedgerAccount, (LedgerAccount(user_id=pk, kind=LedgerAccount.Kind.AVAILABLE) for pk in people))
    available = dict(
        LedgerAccount.objects.filter(user_id__in=people, kind=LedgerAccount.Kind.AVAILABLE).values_list(
            "user_id", "pk"
        )
    )
    fees = platform_account(kind=LedgerAccount.Kind.FEES).pk
    pnl = platform_account(kind=LedgerAccount.Kind.REALIZED_PNL).pk

    def positions() -> Iterator[Position]:
        for index, pk in enumerate(people):
            for n in range(10):
                symbol, category, price = SYMBOLS[n % len(SYMBOLS)]
                live = n == 0
                yield Position(
                    user_id=pk,
                    symbol=symbol,
                    category=category,
                    side="long" if n % 2 else "short",
                    provider=VENUES[(index + n) % len(VENUES)],
                    status=Position.Status.OPEN if live else Position.Status.CLOSED,
                    size=Decimal("0.5"),
                    entry_price=Decimal(price),
                    collateral=Decimal(price) / 20,
                    leverage=Decimal(10),
                    liquidation_level=Decimal("0.1"),
                    margin_call_level=Decimal("0.3"),
                    created_at=moment(),
                )

    log(f"{bulk(Position, positions())} positions")
    held = list(
        Position.objects.filter(user_id__in=people).values_list("pk", "user_id", "provider", "symbol")
    )
    prices = {symbol: price for symbol, _, price in SYMBOLS}

    def fill_rows() -> Iterator[tuple[Fill, LedgerTransaction, list[LedgerEntry]]]:
        for n in range(fills):
            position, user, venue, symbol = held[rng.randrange(len(held))]
            when = moment()
            opening = n % 2 == 0
            price = Decimal(prices[symbol]) * Decimal(rng.uniform(0.9, 1.1)).quantize(Decimal("0.0001"))
            amount = Decimal(rng.randrange(1, 5000)) / 100
            fill = Fill(
                user_id=user,
                position_id=position,
                kind=Fill.Kind.OPEN if opening else Fill.Kind.CLOSE,
                symbol=symbol,
                side="long",
                provider=venue,
                size=Decimal("0.5"),
                price=price,
                fee=amount if opening else Decimal(0),
                realized_pnl=Decimal(0) if opening else -amount,
                created_at=when,
            )
            tx = LedgerTransaction(kind=TransactionKind.FEE if opening else TransactionKind.POSITION_SETTLE)
            tx.created_at = when
            platform_leg = fees if opening else pnl
            entries = [
                LedgerEntry(transaction=tx, account_id=available[user], amount=-amount),
                LedgerEntry(transaction=tx, account_id=platform_leg, amount=amount),
            ]
            yield fill, tx, entries

    written = 0
    for batch in chunks(fill_rows()):
        Fill.objects.bulk_create([row[0] for row in batch], batch_size=BATCH)
        LedgerTransaction.objects.bulk_create([row[1] for row in batch], batch_size=BATCH)
        LedgerEntry.objects.bulk_create([e for row in batch for e in row[2]], batch_size=BATCH * 2)
        written += len(batch)
        if written % 100_000 == 0:
            log(f"{written} fills and their ledger transactions")
    log(f"{written} fills")

    statuses = DepositStatus.values

    def deposit_rows() -> Iterator[Deposit]:
        for n in range(deposits):
            status = (
                statuses[0 if n % 10 else rng.randrange(len(statuses))] if n % 2 else DepositStatus.COMPLETED
            )
            yield Deposit(
                user_id=people[n % len(people)],
                chain_id=42161,
                tx_hash=f"0x{n:064x}",
                log_index=0,
                to_address="0x1111111111111111111111111111111111111111",
                token_address="0x3333333333333333333333333333333333333333",
                token_symbol="USDT",
                token_decimals=6,
                amount_raw=25_000_000,
                source=DepositSource.SCAN,
                status=status,
                confirmations_required=3,
                credited_amount=Decimal("24.9") if status == DepositStatus.COMPLETED else None,
                created_at=moment(),
            )

    log(f"{bulk(Deposit, deposit_rows())} deposits")

    owners = people[:200]
    bulk(
        WebhookEndpoint,
        (
            WebhookEndpoint(user_id=pk, url=f"https://hooks.{EMAIL_DOMAIN}/{pk}", secret_encrypted="-")
            for pk in owners
        ),
    )
    endpoints = dict(WebhookEndpoint.objects.filter(user_id__in=owners).values_list("user_id", "pk"))
    per_owner = deliveries // len(owners)
    for owner in owners:
        events = [
            Event(user_id=owner, seq=seq + 1, type="order.filled", data={}, created_at=moment())
            for seq in range(per_owner)
        ]
        Event.objects.bulk_create(events, batch_size=BATCH)
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    endpoint_id=endpoints[owner],
                    user_id=owner,
                    event=event,
                    event_type=event.type,
                    event_seq=event.seq,
                    webhook_id=f"msg_{event.pk.hex}",
                    body="{}",
                    status=WebhookDelivery.Status.FAILED
                    if rng.random() < 0.05
                    else WebhookDelivery.Status.SUCCEEDED,
                    created_at=event.created_at,
                )
                for event in events
            ],
            batch_size=BATCH,
        )
    log(f"{per_owner * len(owners)} webhook deliveries")

    def drifts() -> Iterator[ReconciliationDrift]:
        for n in range(2000):
            when = moment()
            yield ReconciliationDrift(
                venue=VENUES[n % len(VENUES)],
                kind=ReconciliationDrift.Kind.values[n % len(ReconciliationDrift.Kind.values)],
                status=ReconciliationDrift.Status.OPEN
                if n % 20 == 0
                else ReconciliationDrift.Status.RESOLVED,
                our_ref=f"bench-{n}",
                detected_at=when,
                last_seen_at=when,
            )

    log(f"{bulk(ReconciliationDrift, drifts())} drifts")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    log(f"filled in {time.monotonic() - started:.0f} s")


def timed(runs: int, call: Callable[[], object]) -> tuple[float, float]:
    call()
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return statistics.median(samples), p95


def profile(days: str) -> list[tuple[float, str]]:
    period = dashboard_period(name=days, today=timezone.localdate())
    with CaptureQueriesContext(connection) as queries:
        dashboard_figures(period=period)
    timings = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
            plan = cursor.fetchone()[0][0]
            timings.append((float(plan["Execution Time"]), query["sql"]))
    return timings


def machine() -> str:
    return (
        f"{platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
        f"PostgreSQL {connection.cursor().connection.info.server_version}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--fills", type=int, default=500_000)
    parser.add_argument("--deposits", type=int, default=50_000)
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("Set DATABASE_URL to a PostgreSQL database.", file=sys.stderr)
        return 2

    call_command("migrate", verbosity=0)
    if args.refill:
        data_delete()
    if not bench_users().exists():
        data_fill(users=args.users, fills=args.fills, deposits=args.deposits, deliveries=args.deliveries)
    counts = {
        "users": User.objects.count(),
        "fills": Fill.objects.count(),
        "ledger entries": LedgerEntry.objects.count(),
        "deposits": Deposit.objects.count(),
        "webhook deliveries": WebhookDelivery.objects.count(),
        "drifts": ReconciliationDrift.objects.count(),
    }
    log(", ".join(f"{n:,} {name}" for name, n in counts.items()))

    DailyFigure.objects.all().delete()
    began = time.perf_counter()
    rolled = daily_figures_roll(today=timezone.localdate())
    roll_ms = (time.perf_counter() - began) * 1000
    log(f"rollups of {rolled} closed days built in {roll_ms:.0f} ms ({DailyFigure.objects.count():,} rows)")

    log("profile of the 365-day dashboard, per query (EXPLAIN ANALYZE):")
    for ms, sql in sorted(profile("365d"), reverse=True):
        print(f"  {ms:8.1f} ms  {sql[:150]}")

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the test client's host
    staff, _ = User.objects.get_or_create(email=f"staff@{EMAIL_DOMAIN}", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)

    def page(query: str) -> Callable[[], object]:
        def get() -> object:
            response = client.get(f"/admin/dashboard/{query}")
            assert response.status_code == 200, response.status_code
            return response

        return get

    def page_admin_index() -> object:
        return client.get("/admin/")

    def count_fills() -> object:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM trading_fill")
            return cursor.fetchone()

    def figures(name: str, *, stored: bool = True) -> Callable[[], object]:
        return lambda: dashboard_figures(
            period=dashboard_period(name=name, today=timezone.localdate()), stored=stored
        )

    cases: list[tuple[str, Callable[[], object]]] = [
        ("baseline: SELECT count(*) FROM trading_fill", count_fills),
        ("baseline: admin index page", page_admin_index),
        (
            "baseline: selectors, 365d, every day from the raw rows (no rollups)",
            figures("365d", stored=False),
        ),
        *[(f"selectors, {name}", figures(name)) for name in ("7d", "30d", "90d", "365d")],
        ("page /admin/dashboard/?period=30d", page("?period=30d")),
        ("page /admin/dashboard/?period=365d", page("?period=365d")),
    ]
    results = []
    for name, call in cases:
        p50, p95 = timed(args.runs, call)
        results.append((name, p50, p95))
        log(f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")

    if args.write:
        lines = [
            "",
            f"## Dashboard — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {machine()}. Data: " + ", ".join(f"{n:,} {name}" for name, n in counts.items()) + ", "
            "spread over a year. In-process (Django test client for the pages), "
            f"{args.runs} runs after a warm-up.",
            "",
            f"Rollups of the last {rolled} closed days built from the raw rows (once): {roll_ms:.0f} ms.",
            "",
            "| case | p50 ms | p95 ms |",
            "| --- | ---: | ---: |",
            *[f"| {name} | {p50:.1f} | {p95:.1f} |" for name, p50, p95 in results],
            "",
        ]
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
