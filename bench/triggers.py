"""Trigger engine cost per tick at 1k, 10k and 100k armed triggers (run by hand:
``.venv/bin/python bench/triggers.py``).

Starts, in this process: Redis (embedded unless REDIS_URL is set) and a fresh database (a
SQLite file unless DATABASE_URL is set) with the paper market. For each size it arms that
many triggers on BTCUSD, then feeds the same seeded random walk of ticks (1 bp steps around
64,000) to the engine and times each tick's evaluation: ``triggers.tick_evaluate``, the body
of the ``PRICE_TICK_HOOKS`` entry (the ZRANGEBYSCORE candidate lookup, the re-key of the
trailing stops a new best moves, and the firing of what is crossed, with the close at the
paper venue and its settlement).

What is armed, the same active part at every size so that only the idle part grows:
- active: 120 trailing stops (60 long, 60 short) whose best sits inside the walk's range,
  moved whenever the walk makes a new high (low), and 10 real positions (5 long, 5 short,
  opened with ``order_place``) with a stop-loss and a take-profit 0.10 to 0.46 % away, which the walk
  crosses: these fire and close for real;
- idle: the rest (stops, take-profits and trailing stops of both sides, bulk-created, indexed
  by ``triggers.index_reconcile``), 5 % or more from the walk: never a candidate. Their positions are
  placeholders (closed rows) since nothing ever reads them. On PostgreSQL the tables are
  analysed after the bulk load, as autovacuum does within minutes in production (without
  statistics the planner scans a partial index of every armed row).

Prints median, p99 and max per tick for each size, and the moves and fires seen, and
appends them with the machine (``uname -a``, ``nproc``) and date to BENCHMARKS.md.
``BENCH_PROFILE=1`` also prints a profile of the timed calls.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from marqetfi.embedded import EmbeddedRedis  # noqa: E402

SYMBOL = "BTCUSD"
P0 = Decimal(64000)
ACTIVE_TRAILING = 120
REAL_POSITIONS = 10


def _environment() -> tuple[EmbeddedRedis | None, tempfile.TemporaryDirectory[str] | None]:
    os.environ["DJANGO_SETTINGS_MODULE"] = "marqetfi.settings.base"
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = EmbeddedRedis()
        os.environ["REDIS_URL"] = redis.start()
    workdir = None
    if not os.environ.get("DATABASE_URL"):
        workdir = tempfile.TemporaryDirectory(prefix="marqetfi-bench-triggers-")
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir.name}/bench.sqlite3"
    return redis, workdir


def _on_tick(price: Decimal) -> Decimal:
    return price.quantize(Decimal("0.1"))


class Bench:
    def __init__(self, seed: int) -> None:
        from accounts.models import User
        from ledger.services import balance_adjust

        self.random = random.Random(seed)
        self.staff = User.objects.create_user(email="bench-staff@example.com", password=None, is_staff=True)
        self.traders = []
        for index in range(REAL_POSITIONS):
            trader = User.objects.create_user(email=f"bench-{index}@example.com", password=None)
            balance_adjust(user=trader, amount=Decimal(10**7), reason="bench", actor=self.staff)
            self.traders.append(trader)
        self.holder = self.traders[0]
        self.profile: cProfile.Profile | None = (
            cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
        )

    # --- arming ------------------------------------------------------------------------

    def _placeholders(self, count: int) -> list[Any]:
        from trading.models import Position

        rows = [
            Position(
                user=self.holder,
                symbol=SYMBOL,
                category="crypto",
                side="long",
                provider="paper",
                status=Position.Status.CLOSED,
                size=Decimal(1),
                entry_price=P0,
                collateral=Decimal(1),
                leverage=Decimal(1),
                liquidation_level=Decimal("0.1"),
                margin_call_level=Decimal("0.2"),
            )
            for _ in range(count)
        ]
        return Position.objects.bulk_create(rows, batch_size=2000)

    def _row(self, position: Any, side: str, kind: str, **fields: Any) -> Any:
        from trading.models import ProtectiveOrder

        return ProtectiveOrder(
            user=self.holder, position=position, symbol=SYMBOL, side=side, kind=kind, **fields
        )

    def _idle(self, count: int) -> list[Any]:
        """Triggers the walk never reaches: stops and targets 10-50 % away, trailing stops
        whose best is 10-20 % beyond the price with a 20-30 % trail."""
        rows = []
        r = self.random
        for position in self._placeholders(count):
            side = r.choice(("long", "short"))
            kind = r.choice(("stop_loss", "take_profit", "trailing_stop"))
            below = (side == "long") == (kind != "take_profit")
            if kind == "trailing_stop":  # the stop 5 % or more beyond the price, the best never reached
                if side == "long":
                    best, percent = P0 * Decimal(r.uniform(1.10, 1.20)), Decimal(r.choice((20, 25, 30)))
                else:
                    best, percent = P0 * Decimal(r.uniform(0.85, 0.90)), Decimal(r.choice((30, 35, 40)))
                best = _on_tick(best)
                factor = 1 - percent / 100 if side == "long" else 1 + percent / 100
                rows.append(
                    self._row(
                        position,
                        side,
                        kind,
                        trigger_price=_on_tick(best * factor),
                        best_price=best,
                        trail_percent=percent,
                    )
                )
            else:
                away = Decimal(r.uniform(0.5, 0.9) if below else r.uniform(1.1, 1.5))
                rows.append(self._row(position, side, kind, trigger_price=_on_tick(P0 * away)))
        return rows

    def _active_trailing(self, seed: int) -> list[Any]:
        """Trailing stops whose best lies inside the walk's range: a new high (low) moves some.
        The same ones at every size (``seed``)."""
        from trading import terms

        rows = []
        r = random.Random(seed)
        for index, position in enumerate(self._placeholders(ACTIVE_TRAILING)):
            side = "long" if index % 2 == 0 else "short"
            offset = Decimal(r.uniform(0, 0.008))
            best = _on_tick(P0 * (1 + offset if side == "long" else 1 - offset))
            percent = Decimal(3)
            stop = terms.trailing_stop_price(side=side, best=best, percent=percent, distance=None)
            rows.append(
                self._row(
                    position,
                    side,
                    "trailing_stop",
                    trigger_price=stop,
                    best_price=best,
                    trail_percent=percent,
                )
            )
        return rows

    def arm(self, total: int, seed: int) -> dict[str, int]:
        """Make ``total`` triggers armed on the symbol: fresh active ones, idle ones to fill up."""
        from django.db import connection

        from pricing.services.paper import paper_price_drive
        from trading.models import ProtectiveOrder
        from trading.services.orders import OrderTerms, order_place
        from trading.triggers.index import SETS, index_key, index_reconcile, redis_connection

        ProtectiveOrder.objects.filter(
            symbol=SYMBOL, status="armed", best_price__lt=P0 * Decimal("1.05")
        ).filter(best_price__gt=P0 * Decimal("0.95")).update(
            status="cancelled"
        )  # the previous stage's active trailing stops
        paper_price_drive(symbol=SYMBOL, price=P0)
        for index, trader in enumerate(self.traders):
            side = "long" if index % 2 == 0 else "short"
            away = Decimal("0.001") + Decimal("0.0004") * index  # 0.10 % to 0.46 %: not all on one tick
            up, down = _on_tick(P0 * (1 + away)), _on_tick(P0 * (1 - away))
            order_place(
                user=trader,
                order=OrderTerms(
                    symbol=SYMBOL,
                    side=side,
                    type="market",
                    collateral=Decimal(1000),
                    leverage=Decimal(5),
                    stop_loss=down if side == "long" else up,
                    take_profit=up if side == "long" else down,
                ),
            )
        ProtectiveOrder.objects.bulk_create(self._active_trailing(seed), batch_size=2000)
        armed = ProtectiveOrder.objects.filter(symbol=SYMBOL, status="armed").count()
        if total > armed:
            ProtectiveOrder.objects.bulk_create(self._idle(total - armed), batch_size=2000)
        if connection.vendor == "postgresql":  # as autovacuum would, minutes after a bulk load
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE trading_protectiveorder, trading_position")
        index_reconcile(SYMBOL)
        redis = redis_connection()
        return {name: int(redis.zcard(index_key(SYMBOL, name))) for name in SETS}

    # --- ticking -----------------------------------------------------------------------

    def run(self, ticks: int, seed: int) -> dict[str, Any]:
        from pricing.services.prices import PriceTick
        from providers.venues.paper.services import paper_venue
        from trading.triggers import engine

        walk = random.Random(seed)
        venue = paper_venue()
        price = P0
        samples: list[float] = []
        quiet: list[float] = []
        moved = fired = busy = 0
        for _ in range(ticks):
            price = _on_tick(price * (1 + Decimal(walk.gauss(0, 1)) / 10_000))
            venue.paper_price_set(symbol=SYMBOL, price=price)  # where the paper venue fills a close
            tick = PriceTick(symbol=SYMBOL, bid=price, ask=price, provider="paper", ts=datetime.now(UTC))
            started = time.perf_counter_ns()
            if self.profile is not None:
                self.profile.enable()
            outcome = engine.tick_evaluate(tick)
            if self.profile is not None:
                self.profile.disable()
            elapsed = (time.perf_counter_ns() - started) / 1e6
            samples.append(elapsed)
            if outcome.candidates:
                busy += 1
            else:
                quiet.append(elapsed)
            moved += outcome.moved
            fired += outcome.fired
        ordered = sorted(samples)
        return {
            "p50": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "max": ordered[-1],
            "mean": statistics.fmean(ordered),
            "quiet_p50": statistics.median(quiet) if quiet else 0.0,
            "moved": moved,
            "fired": fired,
            "busy_ticks": busy,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ticks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    redis, workdir = _environment()
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.test import override_settings

        from demo.services import demo_market_ensure
        from providers import registry

        database = settings.DATABASES["default"]
        call_command("migrate", verbosity=0, interactive=False)
        catalogue = copy.deepcopy(settings.PROVIDERS)
        catalogue["paper"]["options"] = {
            "spread_bps": "0",
            "slippage_bps": "0",
            "volatility_bps": "0",
            "mirror_venue": "",
        }
        with override_settings(PROVIDERS=catalogue):
            registry.reset_cache()
            demo_market_ensure()
            bench = Bench(args.seed)
            results = []
            for size in (int(s) for s in args.sizes.split(",")):
                sets = bench.arm(size, args.seed)
                indexed = sum(sets[name] for name in ("bid_below", "bid_above", "ask_above", "ask_below"))
                figures = bench.run(args.ticks, args.seed)
                figures["size"] = indexed
                results.append(figures)
                print(
                    f"{indexed:>7} armed: p50 {figures['p50']:.3f} ms  quiet p50 {figures['quiet_p50']:.3f} ms  "
                    f"p99 {figures['p99']:.3f} ms  "
                    f"max {figures['max']:.1f} ms  mean {figures['mean']:.3f} ms  "
                    f"moved {figures['moved']}  fired {figures['fired']}  busy ticks {figures['busy_ticks']}",
                    flush=True,
                )
    finally:
        if redis is not None:
            redis.stop()
        if workdir is not None:
            workdir.cleanup()
    if bench.profile is not None:
        bench.profile.print_stats("cumulative")
    report = _report(results, args.ticks, database["ENGINE"].rsplit(".", 1)[-1], embedded=redis is not None)
    print(report)
    if not args.no_write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + report)
    return 0


def _report(results: list[dict[str, Any]], ticks: int, engine: str, *, embedded: bool) -> str:
    uname = subprocess.run(["uname", "-a"], check=True, capture_output=True, text=True).stdout.strip()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Trigger engine, cost per tick — {now}",
        "",
        f"Machine: `{uname}`, nproc {os.cpu_count()}, Python {platform.python_version()}; "
        f"{engine} database, {'embedded ' if embedded else ''}Redis on loopback. "
        f"`bench/triggers.py`: {ticks} ticks of a seeded 1 bp random walk on BTCUSD per size, each "
        "timed around `triggers.tick_evaluate` (candidate lookup, re-key of moved trailing stops, "
        "firing with the paper venue's close and the settlement). The active part is the same at "
        f"every size ({ACTIVE_TRAILING} trailing stops inside the walk's range, {REAL_POSITIONS} real "
        "positions with SL and TP 0.10 to 0.46 % away); only the idle triggers grow.",
        "",
        "| armed triggers | p50 ms | p50 ms, ticks with no candidate | p99 ms | max ms | mean ms "
        "| stops moved | fired | ticks with candidates |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['p50']:.3f} | {r['quiet_p50']:.3f} | {r['p99']:.3f} | {r['max']:.1f} "
            f"| {r['mean']:.3f} "
            f"| {r['moved']} | {r['fired']} | {r['busy_ticks']} |"
        )
    first, last = results[0], results[-1]
    growth = last["size"] / first["size"]
    lines += [
        "",
        f"- {growth:.0f}x the armed triggers: p50 x{last['p50'] / first['p50']:.2f}, "
        f"p99 x{last['p99'] / first['p99']:.2f}, mean x{last['mean'] / first['mean']:.2f}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
