"""Load run: many traders at human pace against ``make run``'s processes (run by hand, not a test).

``.venv/bin/python bench/load.py [--backend embedded|pg] [--users 1000] [--duration 180]``;
``--quick`` is a 100-trader, 30-second smoke run.

1. Stack. Starts ``python -m marqetfi.devserver`` (what ``make run`` runs: migrate, seed_demo,
   then web, worker, beat, feed and follower under honcho) on a free port, ``LOCAL_CHAIN=0``,
   ``DEBUG=false``, access tokens valid for two hours (the run outlives the default ten
   minutes), the rate limits left at their defaults. ``--backend embedded``: a fresh SQLite
   file under ``var/`` and the devserver's embedded Redis (make run's defaults). ``--backend
   pg``: a fresh PostgreSQL database on ``--pg-url``'s server, created here and dropped at the
   end, and ``--redis-url`` (its database is flushed before and after: give it a number of its
   own). ``WEB_PROCESSES``, when set, passes through to the devserver.
2. Traders. ``--users`` users (``load-<n>@bench.marqetfi.local``) made through a Django shell
   in the stack's environment, each funded through the ledger's operator credit
   (``ledger.services.balance_adjust``, as the demo trader is), with an access token minted
   directly (no sign-in requests: those are rate-limited per address). Every request of the
   run still goes through the HTTP API and ``/ws``.
3. Baseline, in the same run: one trader alone, before the load, times each endpoint.
4. Load. ``locust -f bench/locust_traders.py --headless`` (a subprocess: locust's gevent
   patching stays out of this process) ramps up at ``--spawn-rate`` users per second, then the
   statistics are reset and it runs for ``--duration`` seconds; each user is the trader of
   ``bench/locust_traders.py`` with one WebSocket.
5. Report. Per endpoint: requests, errors, p50 / p95 / p99; the WebSocket price lag (receive
   time minus the price's ``ts``); the overall error rate; the four targets (under 1 % errors,
   price p95 under 200 ms, order p95 under 500 ms, WebSocket lag p99 under 250 ms) with PASS or
   MISS and the margin; CPU used by the stack, by locust and by everything else on the machine
   (it may be shared); with ``pg``, the most connections the PostgreSQL server had (the stack's
   database's and in all) against its ``max_connections``; what the stack logged at ERROR
   (the devserver's output is kept in a temporary directory, printed at the end). ``--write``
   appends the report to BENCHMARKS.md. The exit status is 0 only when every target passed.

Percentiles come from locust's histogram: exact to the millisecond under 100 ms, to 10 ms
under 1 s, to 100 ms above.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import redis
from psycopg import sql

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import run, wait_http  # noqa: E402
from marqetfi.embedded import free_port  # noqa: E402

SYMBOLS = ("BTCUSD", "ETHUSD", "SOLUSD", "BNBUSD")  # crypto on the paper venue: open every day
FUNDING = "100000"
PRICE = "GET /api/v1/prices/{symbol}"
ORDER = "POST /api/v1/orders"
LAG = "WS price lag (receive - ts)"
TARGETS = {  # row, column, limit in ms
    "price p95": (PRICE, "95%", 200.0),
    "order p95": (ORDER, "95%", 500.0),
    "WebSocket lag p99": (LAG, "99%", 250.0),
}
ERROR_TARGET_PERCENT = 1.0
METRIC_ROWS = frozenset({LAG, "WS order_update after POST /orders"})  # samples, never failures
MAKE_TRADERS = """
import json
from decimal import Decimal
from accounts.models import User
from ledger.models import LedgerEntry, TransactionKind
from ledger.services import balance_adjust
from rest_framework_simplejwt.tokens import AccessToken
emails = [f"load-{{n}}@bench.marqetfi.local" for n in range({count})]
known = set(User.objects.filter(email__in=emails).values_list("email", flat=True))
fresh = [User(email=e) for e in emails if e not in known]
for user in fresh:
    user.set_unusable_password()
User.objects.bulk_create(fresh, batch_size=500)
users = {{u.email: u for u in User.objects.filter(email__in=emails)}}
funded = set(
    LedgerEntry.objects.filter(
        account__user__email__in=emails, transaction__kind=TransactionKind.ADJUSTMENT
    ).values_list("account__user__email", flat=True)
)
for email in emails:
    if email not in funded:
        balance_adjust(user=users[email], amount=Decimal("{funding}"), reason="Load benchmark funding", actor=None)
print("TOKENS " + json.dumps([str(AccessToken.for_user(users[e])) for e in emails]))
"""


@dataclass
class Stack:
    """The devserver and what it runs on; ``stop()`` ends and removes what this script made."""

    env: dict[str, str]
    base: str = ""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    pg_admin_url: str | None = None
    pg_database: str | None = None
    redis_url: str | None = None
    sqlite_path: Path | None = None
    cleanups: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the devserver stops honcho, then the rest
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.pg_database and self.pg_admin_url:
            with psycopg.connect(self.pg_admin_url, autocommit=True) as connection:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.pg_database)
                    )
                )
        if self.redis_url:
            redis.Redis.from_url(self.redis_url).flushdb()
        if self.sqlite_path is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_path}{suffix}").unlink(missing_ok=True)


def stack_start(args: argparse.Namespace, workdir: Path) -> Stack:
    env = {**os.environ}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base",
            "DEBUG": "false",
            "LOCAL_CHAIN": "0",
            "LOG_LEVEL": args.log_level,
            "JWT_ACCESS_LIFETIME_SECONDS": "7200",
            "PYTHONUNBUFFERED": "1",
        }
    )
    stack = Stack(env)
    if args.backend == "pg":
        stack.pg_database = args.pg_database or f"marqetfi_load_{os.getpid()}"
        stack.pg_admin_url = args.pg_url.rstrip("/") + "/postgres"
        with psycopg.connect(stack.pg_admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(stack.pg_database)))
        env["DATABASE_URL"] = f"{args.pg_url.rstrip('/')}/{stack.pg_database}"
        stack.redis_url = env["REDIS_URL"] = args.redis_url
        redis.Redis.from_url(args.redis_url).flushdb()
    else:
        stack.sqlite_path = BASE_DIR / "var" / "bench-load.sqlite3"
        stack.sqlite_path.parent.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{stack.sqlite_path}{suffix}").unlink(missing_ok=True)
        env["DATABASE_URL"] = f"sqlite:///{stack.sqlite_path}"
        env.pop("REDIS_URL", None)  # the devserver starts its embedded Redis, as under make run
    port = free_port()
    env["PORT"] = str(port)
    stack.base = f"http://127.0.0.1:{port}"
    stack.log_path = workdir / "devserver.log"
    with stack.log_path.open("wb") as log:
        stack.process = subprocess.Popen(
            [sys.executable, "-m", "marqetfi.devserver"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while args.backend == "embedded" and "REDIS_URL" not in env:
            if match := re.search(r"Embedded Redis on (\S+)", stack.log_path.read_text(errors="replace")):
                env["REDIS_URL"] = match[1]  # for this script's Django shell: the devserver's Redis
            elif stack.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the devserver did not start its Redis; see {stack.log_path}")
            else:
                time.sleep(0.2)
        wait_http(f"{stack.base}/api/v1/health", timeout=300)
    except BaseException:
        stack.stop()
        raise
    return stack


def background_renice(stack: Stack, level: int) -> list[str]:
    """Renice the devserver's processes that are not the web tier or Redis; returns what was."""
    assert stack.process is not None
    reniced = []
    for process in psutil.Process(stack.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = " ".join(process.cmdline())
            if any(part in command for part in ("daphne", "marqetfi.webserver", "redis-server")):
                continue
            process.nice(level)
            reniced.append(command[:60])
    return reniced


def traders_make(stack: Stack, count: int, workdir: Path) -> Path:
    script = MAKE_TRADERS.format(count=count, funding=FUNDING)
    output = run([sys.executable, "manage.py", "shell", "-c", script], stack.env)
    line = next(line for line in output.splitlines() if line.startswith("TOKENS "))
    path = workdir / "traders.json"
    path.write_text(
        json.dumps({"tokens": json.loads(line.removeprefix("TOKENS ")), "symbols": list(SYMBOLS)})
    )
    return path


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def baseline(base: str, token: str, rounds: int) -> dict[str, dict[str, float]]:
    """One trader alone, before the load: each endpoint ``rounds`` times in a row."""
    figures: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:

        def timed(name: str, method: str, path: str, body: dict[str, str] | None = None) -> None:
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                response = client.request(method, path, json=body)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            figures[name] = {"p50": percentile(samples, 0.5), "p95": percentile(samples, 0.95)}

        timed(PRICE, "GET", f"/api/v1/prices/{SYMBOLS[0]}")
        timed("GET /api/v1/positions", "GET", "/api/v1/positions")
        timed("GET /api/v1/account", "GET", "/api/v1/account")
        order = {"symbol": SYMBOLS[0], "side": "long", "type": "market", "collateral": "10", "leverage": "5"}
        timed(ORDER, "POST", "/api/v1/orders", {**order, "rounding": "down"})
    return figures


@dataclass
class CpuWatch:
    """CPU seconds used over the measured window: the stack, locust, and the rest of the machine."""

    stack_pid: int
    locust_pid: int
    database: str | None
    start: dict[int, float] = field(default_factory=dict)
    machine_start: float = 0.0
    wall_start: float = 0.0

    def _ours(self) -> dict[str, dict[int, float]]:
        groups: dict[str, dict[int, float]] = {"stack": {}, "locust": {}}
        for name, pid in (("stack", self.stack_pid), ("locust", self.locust_pid)):
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = process.cpu_times()
                        groups[name][process.pid] = times.user + times.system
        if self.database:  # the PostgreSQL backends serving the stack's database
            for process in psutil.process_iter(["cmdline"]):
                with contextlib.suppress(psutil.Error):
                    if f" {self.database} " in " ".join(process.info["cmdline"] or []) + " ":
                        times = process.cpu_times()
                        groups["stack"][process.pid] = times.user + times.system
        return groups

    @staticmethod
    def _machine() -> float:
        times = psutil.cpu_times()
        return (
            times.user + times.system + times.nice + getattr(times, "irq", 0) + getattr(times, "softirq", 0)
        )

    def begin(self) -> None:
        self.start = {pid: seconds for group in self._ours().values() for pid, seconds in group.items()}
        self.machine_start, self.wall_start = self._machine(), time.monotonic()

    def end(self) -> dict[str, float]:
        """Cores busy on average, per group."""
        wall = time.monotonic() - self.wall_start
        used = {
            name: sum(seconds - self.start.get(pid, 0.0) for pid, seconds in group.items()) / wall
            for name, group in self._ours().items()
        }
        machine = (self._machine() - self.machine_start) / wall
        used["other"] = max(0.0, machine - used["stack"] - used["locust"])
        return used


def locust_rows(prefix: Path) -> list[dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open() as handle:
        return [row for row in csv.DictReader(handle) if row["Name"] != "Aggregated"]


def locust_failures(prefix: Path) -> list[dict[str, str]]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with path.open() as handle:
        return sorted(csv.DictReader(handle), key=lambda row: -int(row["Occurrences"]))


def connects_read(directory: Path) -> dict[str, Any]:
    """The sockets opened over the whole run (ramp-up included), from every locust process."""
    total: dict[str, Any] = {
        "attempts": 0,
        "failed": 0,
        "ms": [],
        "errors": {},
        "closed": 0,
        "error_messages": {},
    }
    for path in directory.glob("connects-*.json"):
        part = json.loads(path.read_text())
        for key in ("attempts", "failed", "ms", "closed"):
            total[key] += part[key]
        for key in ("errors", "error_messages"):
            for error, occurrences in part[key].items():
                total[key][error] = total[key].get(error, 0) + occurrences
    return total


def server_errors(log: Path, until: int) -> list[tuple[int, str]]:
    """What the stack logged at ERROR in its first ``until`` bytes of output (up to the end of the
    load, not its shutdown): (count, message and last line of the traceback), most first."""
    found: dict[str, int] = {}
    with log.open("rb") as handle:
        for line in handle.read(until).decode(errors="replace").splitlines():
            start = line.find("{")
            if start < 0 or '"ERROR"' not in line:
                continue
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if record.get("level") != "ERROR":
                continue
            cause = (record.get("exc_info") or "").strip().splitlines()[-1:] or [""]
            key = f"{record.get('message', '')[:80]}: {cause[0][:240]}".rstrip(": ")
            found[key] = found.get(key, 0) + 1
    return sorted(((count, key) for key, count in found.items()), reverse=True)


@dataclass
class PgWatch:
    """Connections to the PostgreSQL server, sampled each second: the stack's database's and all."""

    admin_url: str
    database: str
    max_connections: int = 0
    ours_max: int = 0
    total_max: int = 0
    samples: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            row = connection.execute("SHOW max_connections").fetchone()
            self.max_connections = int(row[0]) if row else 0
            while not self.stopping.wait(1.0):
                counted = connection.execute(
                    "SELECT count(*) FILTER (WHERE datname = %s), count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend'",
                    (self.database,),
                ).fetchone()
                if counted:
                    self.ours_max, self.total_max = (
                        max(self.ours_max, counted[0]),
                        max(self.total_max, counted[1]),
                    )
                    self.samples += 1


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?"
    )
    return (
        f"{platform.node()}, nproc {os.cpu_count()}, {model}, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )


def report(
    *,
    args: argparse.Namespace,
    started_at: datetime,
    rows: list[dict[str, str]],
    failures: list[dict[str, str]],
    connects: dict[str, Any],
    pg: PgWatch | None,
    errors_logged: list[tuple[int, str]],
    before: dict[str, dict[str, float]],
    cpu: dict[str, float],
    load_before: tuple[float, float, float],
) -> tuple[str, bool]:
    by_name = {f"{row['Type']} {row['Name']}": row for row in rows}
    lines = [
        f"## Load, {args.users} traders — {started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}. `bench/load.py --backend {args.backend} --users {args.users} "
        f"--spawn-rate {args.spawn_rate:g} --duration {args.duration:g}"
        f"{' --background-nice ' + str(args.background_nice) if args.background_nice else ''}`: "
        "`python -m marqetfi.devserver` "
        f"(make run: web, worker, beat, feed, follower; LOCAL_CHAIN=0, DEBUG=false, LOG_LEVEL={args.log_level}"
        f"{', WEB_PROCESSES=' + os.environ['WEB_PROCESSES'] if os.environ.get('WEB_PROCESSES') else ''}"
        f"{'; all but the web tier and Redis at nice ' + str(args.background_nice) if args.background_nice else ''}"
        ") on "
        + (
            "PostgreSQL 127.0.0.1:5432 and Redis 127.0.0.1:6379"
            if args.backend == "pg"
            else "SQLite and the embedded Redis"
        )
        + f"; locust {args.locust_processes} process(es) on the same machine, statistics reset after the "
        f"ramp-up, then {args.duration:g} s measured. Each trader: 2-10 s between actions (price 6, positions 3, "
        f"account 3, market order 2 (40 % with SL/TP), close 1), one WebSocket on one of "
        f"{', '.join(SYMBOLS)} plus its orders and positions.",
        "",
        f"Shared machine: load average {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} before "
        f"the run; during the measured window (cores busy on average) the stack {cpu['stack']:.2f}"
        + (" (with its PostgreSQL backends)" if args.backend == "pg" else "")
        + f", locust {cpu['locust']:.2f}, everything else on the machine {cpu['other']:.2f}.",
        "",
        "| endpoint | requests | errors | error % | p50 ms | p95 ms | p99 ms | alone p50 / p95 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    total = failed = 0
    for key, row in sorted(by_name.items()):
        requests, errors = int(row["Request Count"]), int(row["Failure Count"])
        if key not in METRIC_ROWS:
            total, failed = total + requests, failed + errors
        alone = before.get(key)
        alone_text = f"{alone['p50']:.0f} / {alone['p95']:.0f}" if alone else ""
        lines.append(
            f"| {key} | {requests} | {errors} | {100 * errors / max(requests, 1):.2f} | "
            f"{ms(number(row['50%']))} | {ms(number(row['95%']))} | {ms(number(row['99%']))} | "
            f"{alone_text} |"
        )
    opened = connects["ms"]
    lines.append(
        f"| WS connect, auth, subscribe (whole run, ramp-up included) | {connects['attempts']} | "
        f"{connects['failed']} | {100 * connects['failed'] / max(connects['attempts'], 1):.2f} | "
        + (
            " | ".join(f"{percentile(opened, share):.0f}" for share in (0.5, 0.95, 0.99))
            if opened
            else "n/a | n/a | n/a"
        )
        + " |  |"
    )
    total, failed = total + connects["attempts"], failed + connects["failed"]
    error_percent = 100 * failed / max(total, 1)
    lines += [
        "",
        f"Overall: {total} requests, socket opens and socket failures, {failed} errors ({error_percent:.2f} %). "
        f"Over the whole run, ramp-up included: {connects['closed']} sockets closed unexpectedly, `error` "
        f"messages {json.dumps(connects['error_messages']) if connects['error_messages'] else 'none'}."
        + (
            f" PostgreSQL connections (sampled each second, client backends): the stack's database at most "
            f"{pg.ours_max}, the whole server at most {pg.total_max} of max_connections {pg.max_connections}."
            if pg is not None and pg.samples
            else ""
        ),
        "",
    ]
    lines += ["| target | measured | result |", "| --- | ---: | --- |"]
    passed = True
    verdict = "PASS" if error_percent < ERROR_TARGET_PERCENT else "MISS"
    passed &= verdict == "PASS"
    lines.append(
        f"| errors under {ERROR_TARGET_PERCENT:g} % | {error_percent:.2f} % | {verdict} "
        f"({abs(ERROR_TARGET_PERCENT - error_percent):.2f} points {'under' if verdict == 'PASS' else 'over'}) |"
    )
    for label, (key, column, limit) in TARGETS.items():
        value = number(by_name[key][column]) if key in by_name else None
        if value is None:
            lines.append(f"| {label} under {limit:.0f} ms | no samples | MISS |")
            passed = False
            continue
        verdict = "PASS" if value < limit else "MISS"
        passed &= verdict == "PASS"
        lines.append(
            f"| {label} under {limit:.0f} ms | {value:.0f} ms | {verdict} "
            f"({abs(limit - value):.0f} ms {'under' if verdict == 'PASS' else 'over'}) |"
        )
    if failures or connects["errors"]:
        lines += ["", "Errors by kind (most frequent first):", ""]
        lines += [
            f"- {row['Occurrences']} x {row['Method']} {row['Name']}: {row['Error'][:300]}"
            for row in failures[:8]
        ]
        lines += [
            f"- {occurrences} x WS connect: {error[:300]}"
            for error, occurrences in sorted(connects["errors"].items(), key=lambda item: -item[1])[:4]
        ]
    if errors_logged:
        lines += [
            "",
            "Logged at ERROR by the stack (message: last line of the traceback), most frequent first:",
            "",
        ]
        lines += [f"- {count} x {key}" for count, key in errors_logged[:6]]
    lines.append("")
    return "\n".join(lines), passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("embedded", "pg"), default="embedded")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds measured after the ramp-up")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 users, 30 s")
    parser.add_argument(
        "--locust-processes", type=int, default=1, help="locust worker processes (--processes)"
    )
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432", help="server, no database")
    parser.add_argument("--pg-database", help="name of the fresh database (default marqetfi_load_<pid>)")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/15",
        help="pg backend: a Redis database of its own (flushed)",
    )
    parser.add_argument("--log-level", default="WARNING", help="the stack's LOG_LEVEL")
    parser.add_argument(
        "--background-nice",
        type=int,
        default=0,
        help="run the stack's processes other than the web tier (worker, beat, feed, fire, follower) at this "
        "nice level, as if on other machines: their periodic bursts (reconciliation of every account) then "
        "take only the CPU the web tier leaves",
    )
    parser.add_argument("--write", action="store_true", help="append the report to BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick:
        args.users, args.duration = 100, 30.0

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # sockets: inherited by the stack and locust
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="marqetfi-load-"))
    print(
        f"starting the stack ({args.backend}); its output goes to {workdir / 'devserver.log'} ...", flush=True
    )
    stack = stack_start(args, workdir)
    locust: subprocess.Popen[bytes] | None = None
    pg: PgWatch | None = None
    try:
        print(f"making {args.users} funded traders ...", flush=True)
        traders = traders_make(stack, args.users, workdir)
        before = baseline(stack.base, json.loads(traders.read_text())["tokens"][0], rounds=20)
        if args.background_nice:
            reniced = background_renice(stack, args.background_nice)
            print(f"reniced to {args.background_nice}: {len(reniced)} processes", flush=True)
        ramp = args.users / args.spawn_rate
        prefix = workdir / "locust"
        command = [
            str(Path(sys.executable).parent / "locust"),
            "-f",
            str(BASE_DIR / "bench" / "locust_traders.py"),
            "--headless",
            "--host",
            stack.base,
            "-u",
            str(args.users),
            "-r",
            f"{args.spawn_rate:g}",
            "-t",
            f"{ramp + args.duration:.0f}s",
            "--reset-stats",
            "--csv",
            str(prefix),
            "--only-summary",
            "--stop-timeout",
            "10",
            "--loglevel",
            "WARNING",
        ]
        if args.locust_processes > 1:
            command += ["--processes", str(args.locust_processes)]
        env = {
            **os.environ,
            "LOAD_TRADERS_FILE": str(traders),
            "LOAD_WORKERS": str(args.locust_processes),
            "LOAD_RESULTS_DIR": str(workdir),
        }
        print(
            f"locust: {args.users} users at {args.spawn_rate:g}/s, then {args.duration:g} s measured ...",
            flush=True,
        )
        locust = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        assert stack.process is not None
        cpu = CpuWatch(stack.process.pid, locust.pid, stack.pg_database)
        if stack.pg_admin_url and stack.pg_database:
            pg = PgWatch(stack.pg_admin_url, stack.pg_database)
            threading.Thread(target=pg.run, daemon=True).start()
        time.sleep(ramp)
        cpu.begin()
        time.sleep(args.duration)
        used = cpu.end()
        locust.wait(timeout=args.duration + ramp + 120)
        assert stack.log_path is not None
        log_until = stack.log_path.stat().st_size
        rows, failures, connects = locust_rows(prefix), locust_failures(prefix), connects_read(workdir)
    finally:
        if pg is not None:
            pg.stopping.set()
        if locust is not None and locust.poll() is None:
            os.killpg(locust.pid, signal.SIGTERM)
            locust.wait(timeout=30)
        stack.stop()
    text, passed = report(
        args=args,
        started_at=started_at,
        rows=rows,
        failures=failures,
        connects=connects,
        pg=pg,
        errors_logged=server_errors(stack.log_path, log_until),
        before=before,
        cpu=used,
        load_before=load_before,
    )
    print(text)
    if args.write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + text)
    print(f"locust CSV files: {prefix}_*.csv; the stack's output: {workdir / 'devserver.log'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
