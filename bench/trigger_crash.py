"""A crash through 10,000 armed stops, with the feed's latency for the other symbols (run by
hand: ``DATABASE_URL=postgres://... REDIS_URL=redis://.../n .venv/bin/python bench/trigger_crash.py``).

The database named by DATABASE_URL is emptied (its public schema dropped) and migrated; the
Redis db of REDIS_URL is flushed. Then, on the paper market:

- seeds ``--stops`` open long positions on BTCUSD, one per user, each with a stop-loss at
  63,000 (bulk-created: users, their ledger accounts funded by one balanced adjustment, the
  paper venue's positions, our positions and their stops; indexed by ``index_reconcile``),
  and ``--baseline-stops`` such positions on ETHUSD for the old path;
- runs a feed in this process: one thread ingesting, in order and on schedule, a steady
  stream of ticks on ``--others`` other symbols (each every ``--interval`` s) through
  ``price_tick_ingest`` with the production tick hooks, and one crash tick through the stops.
  A tick's latency is from its scheduled arrival to the return of its ingest: what a tick
  waits behind the crash tick shows there. On the new path the hooks run as ``pricefeed``
  runs them, on a ``TickHookRunner`` (the ingest returns once the tick is cached and
  broadcast); the bench's own last hook also records when each tick's hooks were done
  (tick-to-hooks) and how long the crash tick's hooks took (the claim of every stop);
- new path: ``--consumers`` ``manage.py triggerfire`` processes with ``--concurrency`` threads
  each (``TRIGGER_FIRE_PARTITIONS`` partitions shared between them by lease, no flag pinning
  them) fire what the crash tick enqueued; the time until the last stop fired is measured
  from the crash tick;
- baseline, same run, same feed: ``TRIGGER_FIRE_INLINE`` (the tick fires in the feed's thread,
  as before the queue) on the ETHUSD stops (fewer, so that it finishes).

Checked after each phase: every stop fired exactly once (one close fill per position, every
position closed, no stop left armed) and ``ledger_check() == []``. Prints the figures and
appends them with the machine and the date to BENCHMARKS.md (``--no-write`` not).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

CRASH_SYMBOL = "BTCUSD"
BASELINE_SYMBOL = "ETHUSD"
OTHER_SYMBOLS = ("SOLUSD", "XRPUSD", "DOGEUSD", "ADAUSD", "LINKUSD", "AVAXUSD", "BNBUSD", "LTCUSD")
START = {CRASH_SYMBOL: Decimal(64000), BASELINE_SYMBOL: Decimal(3200)}
STOP_AT = {CRASH_SYMBOL: Decimal(63000), BASELINE_SYMBOL: Decimal(3150)}
CRASH_TO = {CRASH_SYMBOL: Decimal(60000), BASELINE_SYMBOL: Decimal(3000)}
COLLATERAL = Decimal(100)
LEVERAGE = Decimal(5)


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


@dataclass
class Feed:
    """Ingests scheduled ticks in order in one thread, as the price feed does."""

    others: list[tuple[str, Decimal]]
    interval: float
    latencies: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # perf_counter of each tick's arrival
    stop: threading.Event = field(default_factory=threading.Event)
    crash: tuple[str, Decimal] | None = None
    crash_done: threading.Event = field(default_factory=threading.Event)
    crash_seconds: float = 0.0
    crash_started: float = 0.0
    crash_hooks_done: float = 0.0
    hooks: Any = None  # a TickHookRunner, as pricefeed runs them; None: in this thread
    due_of: dict[tuple[str, datetime], float] = field(default_factory=dict)
    hook_latencies: list[tuple[float, float]] = field(default_factory=list)  # (arrival, ms)

    def hooks_done(self, tick: Any) -> None:
        """The bench's last tick hook: when the production hooks of a tick were done."""
        now = time.perf_counter()
        due = self.due_of.pop((tick.symbol, tick.ts), None)
        if due is None:
            self.crash_hooks_done = now
        else:
            self.hook_latencies.append((due, (now - due) * 1000))

    def run(self) -> None:
        from django.db import connection

        from pricing.services.prices import price_tick_ingest

        step = self.interval / max(1, len(self.others))
        due = time.perf_counter()
        index = 0
        try:
            while not self.stop.is_set():
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                if self.crash is not None:
                    symbol, price = self.crash
                    self.crash = None
                    self.crash_started = time.perf_counter()
                    price_tick_ingest(
                        symbol=symbol,
                        bid=price,
                        ask=price,
                        provider="paper",
                        ts=datetime.now(UTC),
                        hooks=self.hooks,
                    )
                    self.crash_seconds = time.perf_counter() - self.crash_started
                    self.crash_done.set()
                    continue
                symbol, base = self.others[index % len(self.others)]
                wiggle = Decimal(1 + (index % 7)) / Decimal(10_000)
                price = (base * (1 + wiggle)).quantize(Decimal("0.0001"))
                ts = datetime.now(UTC)
                self.due_of[(symbol, ts)] = due
                price_tick_ingest(
                    symbol=symbol, bid=price, ask=price, provider="paper", ts=ts, hooks=self.hooks
                )
                self.latencies.append((time.perf_counter() - due) * 1000)
                self.arrivals.append(due)
                index += 1
                due += step
        finally:
            connection.close()

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "ticks": len(ordered),
            "p50": statistics.median(ordered) if ordered else 0.0,
            "p99": _percentile(ordered, 0.99),
            "max": ordered[-1] if ordered else 0.0,
        }


_FEEDS: list[Feed] = []


def hooks_done(tick: Any) -> None:
    """A ``PRICE_TICK_HOOKS`` entry (``__main__.hooks_done``) after the production ones."""
    if _FEEDS:
        _FEEDS[-1].hooks_done(tick)


def _environment() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "marqetfi.settings.base"
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL (PostgreSQL) and REDIS_URL: both are emptied")


def _reset() -> None:
    from django.core.management import call_command
    from django.db import connection

    from trading.triggers.index import redis_connection

    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    call_command("migrate", verbosity=0, interactive=False)
    redis_connection().flushdb()


def seed(symbol: str, count: int) -> None:
    """``count`` open longs on ``symbol``, one per new user, each with a stop-loss: the rows
    ``order_place`` would leave (ledger included), written in bulk."""
    from accounts.models import User
    from ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction, TransactionKind
    from ledger.services import platform_account
    from pricing.services.paper import paper_price_drive
    from providers.models import PaperPosition
    from trading.models import Position, ProtectiveOrder
    from trading.triggers.index import index_reconcile

    entry = START[symbol]
    size = (COLLATERAL * LEVERAGE / entry).quantize(Decimal("0.00000001"))
    tag = uuid.uuid4().hex[:6]
    users = User.objects.bulk_create(
        [User(email=f"crash-{tag}-{n}@example.com", password="!") for n in range(count)], batch_size=2000
    )
    margins = LedgerAccount.objects.bulk_create(
        [LedgerAccount(user=u, kind=LedgerAccount.Kind.MARGIN, balance=COLLATERAL) for u in users],
        batch_size=2000,
    )
    LedgerAccount.objects.bulk_create(
        [LedgerAccount(user=u, kind=LedgerAccount.Kind.AVAILABLE, balance=Decimal(0)) for u in users],
        batch_size=2000,
    )
    source = platform_account(kind=LedgerAccount.Kind.ADJUSTMENTS)
    total = COLLATERAL * count
    funding = LedgerTransaction.objects.create(kind=TransactionKind.ADJUSTMENT, memo="bench: collateral")
    LedgerEntry.objects.bulk_create(
        [LedgerEntry(transaction=funding, account=source, amount=-total)]
        + [LedgerEntry(transaction=funding, account=m, amount=COLLATERAL) for m in margins],
        batch_size=2000,
    )
    LedgerAccount.objects.filter(pk=source.pk).update(balance=source.balance - total)
    paper = PaperPosition.objects.bulk_create(
        [
            PaperPosition(
                account_ref=str(u.pk),
                symbol=symbol,
                side="long",
                size=size,
                entry_price=entry,
                collateral=COLLATERAL,
                leverage=LEVERAGE,
            )
            for u in users
        ],
        batch_size=2000,
    )
    positions = Position.objects.bulk_create(
        [
            Position(
                user=u,
                symbol=symbol,
                category="crypto",
                side="long",
                provider="paper",
                account_ref=str(u.pk),
                venue_position_id=str(p.pk),
                size=size,
                entry_price=entry,
                collateral=COLLATERAL,
                leverage=LEVERAGE,
                liquidation_level=Decimal("0.1"),
                margin_call_level=Decimal("0.2"),
            )
            for u, p in zip(users, paper, strict=True)
        ],
        batch_size=2000,
    )
    ProtectiveOrder.objects.bulk_create(
        [
            ProtectiveOrder(
                user_id=p.user_id,
                position=p,
                symbol=symbol,
                side="long",
                kind=ProtectiveOrder.Kind.STOP_LOSS,
                trigger_price=STOP_AT[symbol],
            )
            for p in positions
        ],
        batch_size=2000,
    )
    from django.db import connection

    with connection.cursor() as cursor:  # as autovacuum would, minutes after a bulk load
        cursor.execute("ANALYZE")
    paper_price_drive(symbol=symbol, price=entry)
    index_reconcile(symbol)


def fired_count(symbol: str) -> int:
    from trading.models import ProtectiveOrder

    return ProtectiveOrder.objects.filter(symbol=symbol, kind="stop_loss", status="fired").count()


def exactly_once(symbol: str, count: int) -> dict[str, Any]:
    from django.db.models import Count

    from ledger.checks import ledger_check
    from trading.models import Fill, Position, ProtectiveOrder

    fills = (
        Fill.objects.filter(position__symbol=symbol, kind=Fill.Kind.CLOSE)
        .values("position_id")
        .annotate(n=Count("pk"))
    )
    per_position = [row["n"] for row in fills]
    return {
        "stops": count,
        "fired": fired_count(symbol),
        "still_armed": ProtectiveOrder.objects.filter(symbol=symbol, status="armed").count(),
        "closed": Position.objects.filter(symbol=symbol, status="closed").count(),
        "positions_with_one_close": sum(1 for n in per_position if n == 1),
        "positions_with_more": sum(1 for n in per_position if n > 1),
        "ledger_problems": len(ledger_check()),
    }


def phase(
    feed: Feed, symbol: str, count: int, *, warmup: float, after: float, limit: float
) -> dict[str, Any]:
    """Ticks for ``warmup`` s, the crash tick, ticks until every stop fired and ``after`` s
    more; the latency figures are of the ticks from the crash on."""
    from providers.venues.paper.services import paper_venue

    time.sleep(warmup)
    before = len(feed.latencies)
    paper_venue().paper_price_set(symbol=symbol, price=CRASH_TO[symbol])  # where closes fill
    feed.crash_done.clear()
    feed.crash = (symbol, CRASH_TO[symbol])
    feed.crash_done.wait()
    started = feed.crash_started
    while not feed.crash_hooks_done and time.perf_counter() - started < limit:
        time.sleep(0.01)
    last = None
    while time.perf_counter() - started < limit:
        if fired_count(symbol) >= count:
            last = time.perf_counter() - started
            break
        time.sleep(0.25)
    fired_by_limit = fired_count(symbol)
    elapsed = time.perf_counter() - started
    if last is None:
        last = float("nan")
    time.sleep(after)
    during = sorted(feed.latencies[before:])
    settled = sorted(
        latency
        for latency, arrival in zip(feed.latencies[before:], feed.arrivals[before:], strict=True)
        if arrival > started + 2
    )
    hooked = sorted(ms for arrival, ms in list(feed.hook_latencies) if arrival >= started)
    return {
        "crash_hooks_ms": (feed.crash_hooks_done - started) * 1000,
        "hooks_p50": statistics.median(hooked) if hooked else 0.0,
        "hooks_p99": _percentile(hooked, 0.99),
        "hooks_max": hooked[-1] if hooked else 0.0,
        "over_50ms": sum(1 for latency in during if latency > 50),
        "p99_after_2s": _percentile(settled, 0.99),
        "max_after_2s": settled[-1] if settled else 0.0,
        "crash_tick_ms": feed.crash_seconds * 1000,
        "last_fire_s": last,
        "fired_in_window": fired_by_limit,
        "window_s": elapsed,
        "ticks": len(during),
        "p50": statistics.median(during) if during else 0.0,
        "p99": _percentile(during, 0.99),
        "max": during[-1] if during else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=10_000)
    parser.add_argument("--baseline-stops", type=int, default=300)
    parser.add_argument("--consumers", type=int, default=1, help="triggerfire processes")
    parser.add_argument("--concurrency", type=int, default=4, help="consumer threads per process")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the consumer processes")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--others", type=int, default=8, help="other symbols ticking")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between two ticks of one symbol")
    parser.add_argument("--limit", type=float, default=1800, help="seconds to wait for the last fire")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    _environment()
    os.environ["TRIGGER_FIRE_PARTITIONS"] = str(args.partitions)
    import django

    django.setup()
    from django.test import override_settings

    from demo.services import demo_market_ensure
    from pricing.services.paper import paper_price_drive

    print("resetting and migrating the database", flush=True)
    _reset()
    demo_market_ensure()
    others = [(s, Decimal(10)) for s in OTHER_SYMBOLS[: args.others]]
    for symbol, price in others:
        paper_price_drive(symbol=symbol, price=price)
    t0 = time.perf_counter()
    seed(CRASH_SYMBOL, args.stops)
    seed(BASELINE_SYMBOL, args.baseline_stops)
    print(
        f"seeded {args.stops} + {args.baseline_stops} positions in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    from django.conf import settings

    from pricing.services.prices import TickHookRunner

    hooks = [*settings.PRICE_TICK_HOOKS, "__main__.hooks_done"]
    feed = Feed(others=others, interval=args.interval)
    _FEEDS.append(feed)
    results: dict[str, Any] = {}
    # Baseline: the old path, firing in the feed's thread.
    with override_settings(TRIGGER_FIRE_INLINE=True, PRICE_TICK_HOOKS=hooks):
        thread = threading.Thread(target=feed.run, daemon=True)
        thread.start()
        results["baseline"] = phase(
            feed, BASELINE_SYMBOL, args.baseline_stops, warmup=3, after=2, limit=args.limit
        )
        feed.stop.set()
        thread.join()
    results["baseline"]["check"] = exactly_once(BASELINE_SYMBOL, args.baseline_stops)
    print("baseline", results["baseline"], flush=True)

    # The firing queue and its consumers.
    env = {**os.environ, "TRIGGER_FIRE_PARTITIONS": str(args.partitions)}
    consumers = [
        subprocess.Popen(
            [
                *("nice", "-n", str(args.nice), sys.executable, "manage.py", "triggerfire"),
                *("--concurrency", str(args.concurrency)),
            ],
            cwd=BASE_DIR,
            env=env,
        )
        for _ in range(args.consumers)
    ]
    runner = TickHookRunner(name="feed-hooks")
    try:
        feed = Feed(others=others, interval=args.interval, hooks=runner)
        _FEEDS.append(feed)
        with override_settings(PRICE_TICK_HOOKS=hooks):
            thread = threading.Thread(target=feed.run, daemon=True)
            thread.start()
            results["queue"] = phase(feed, CRASH_SYMBOL, args.stops, warmup=5, after=2, limit=args.limit)
            feed.stop.set()
            thread.join()
            runner.stop()
    finally:
        for process in consumers:
            process.terminate()
        for process in consumers:
            process.wait(timeout=30)
    results["queue"]["check"] = exactly_once(CRASH_SYMBOL, args.stops)
    print("queue", results["queue"], flush=True)
    report = _report(results, args)
    print(report)
    if not args.no_write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + report)
    return 0


def _report(results: dict[str, Any], args: argparse.Namespace) -> str:
    uname = subprocess.run(["uname", "-a"], check=True, capture_output=True, text=True).stdout.strip()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    base, queue = results["baseline"], results["queue"]
    lines = [
        f"## Trigger engine, a crash through armed stops — {now}",
        "",
        f"Machine: `{uname}`, nproc {os.cpu_count()}, Python {platform.python_version()}; PostgreSQL "
        "(local) and Redis 7 on loopback (what else ran on the machine shows in the load average "
        "below). `bench/trigger_crash.py`: open longs with a stop-loss, one per "
        "user, bulk-seeded; one feed thread ingests a steady stream of ticks on "
        f"{args.others} other symbols ({args.others / args.interval:.0f} ticks/s) through "
        "`price_tick_ingest` with the production hooks, and one crash tick through every stop. "
        "Tick-to-cache latency: from a tick's scheduled arrival to the return of its ingest, for "
        "the other symbols' ticks from the crash tick until 2 s after the last fire; on the queue "
        "path the hooks run on the feed's `TickHookRunner` (4 threads, per symbol in order), as in "
        "`pricefeed`, and tick-to-hooks is when their hooks were done. Crash tick: its ingest in "
        "the feed's thread / its hooks (the claim of every stop). Baseline in the same run: "
        "`TRIGGER_FIRE_INLINE` with the hooks in the feed's thread (the old synchronous firing), "
        f"on {args.baseline_stops} stops so that it finishes. Queue: {args.consumers} `triggerfire` "
        f"process(es) of {args.concurrency} consumer threads (nice {args.nice}: the feed first) over "
        f"{args.partitions} partitions. Load average at the end: {os.getloadavg()[0]:.1f} / "
        f"{os.getloadavg()[1]:.1f} / {os.getloadavg()[2]:.1f} (1 / 5 / 15 min).",
        "",
        "| path | stops | crash tick ms (feed / hooks) | last fire s | other ticks | p50 ms | p99 ms "
        "| max ms | over 50 ms | p99 / max ms from 2 s after the crash | tick-to-hooks p50 / p99 / max ms "
        "| fired | closed | one close each | more than one | ledger problems |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for name, r in (("synchronous (baseline)", base), ("queue + consumers", queue)):
        c = r["check"]
        lines.append(
            f"| {name} | {c['stops']:,} | {r['crash_tick_ms']:.1f} / {r['crash_hooks_ms']:.1f} "
            f"| {r['last_fire_s']:.1f} | {r['ticks']} "
            f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | {r['over_50ms']} "
            f"| {r['p99_after_2s']:.1f} / {r['max_after_2s']:.1f} "
            f"| {r['hooks_p50']:.1f} / {r['hooks_p99']:.1f} / {r['hooks_max']:.1f} "
            f"| {c['fired']:,} | {c['closed']:,} "
            f"| {c['positions_with_one_close']:,} | {c['positions_with_more']} | {c['ledger_problems']} |"
        )
    lines.append("")
    for name, r in (("synchronous", base), ("queue", queue)):
        rate = r["fired_in_window"] / r["window_s"] if r["window_s"] else 0.0
        lines.append(
            f"- {name}: {r['fired_in_window']:,} of {r['check']['stops']:,} stops fired in "
            f"{r['window_s']:.1f} s after the crash tick ({rate:.1f} fires/s)."
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
