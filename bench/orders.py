"""Order placement latency over HTTP on the paper venue (run by hand: ``.venv/bin/python bench/orders.py``).

Starts, on this machine: Redis (embedded unless REDIS_URL is set), a fresh database with the
demo data (the paper market and the funded demo trader), the price feed and our app on
``--web-processes`` daphne processes sharing one listening socket (``daphne --fd``; the
kernel hands each connection to whichever process accepts first). Signs the demo trader in,
then places market orders (``POST /api/v1/orders``, a small long on BTCUSD each, adding to
one position) one after another; then ``--clients`` clients at once, each its own funded
trader (``bench-orders-<n>@marqetfi.local``, made through a Django shell), for
``--seconds``; and closes part of the demo trader's position the same way. Reports p50 /
p95 / p99 of each and the traders' orders per second, and appends them, with the machine
and date, to BENCHMARKS.md. The orders are sent by ``hey`` (``apt-get install -y hey``; one
process per client, each one connection) when it is installed, else by httpx threads
(``--client``), whose CPU on a shared machine is a good part of what they measure.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import processes_stop, run, wait_http  # noqa: E402
from marqetfi.embedded import EmbeddedRedis  # noqa: E402

TRADER_EMAIL = "bench-trader@marqetfi.local"
TRADER_PASSWORD = "bench-trader-password-1"
ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "5", "leverage": "2"}

# The traders of the "several at once" run: made, funded through the ledger and given an
# access token each, in one Django shell.
MAKE_TRADERS = """
import json
from decimal import Decimal
from accounts.models import User
from ledger.services import balance_adjust
from rest_framework_simplejwt.tokens import AccessToken
tokens = []
for n in range({count}):
    user, created = User.objects.get_or_create(email=f"bench-orders-{{n}}@marqetfi.local")
    if created:
        user.set_unusable_password()
        user.save()
        balance_adjust(user=user, amount=Decimal(1000000), reason="bench funding", actor=None)
    tokens.append(str(AccessToken.for_user(user)))
print("TOKENS " + json.dumps(tokens))
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {
        "n": len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": statistics.fmean(ordered),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def timed_post(client: httpx.Client, url: str, body: dict[str, str], token: str) -> float:
    started = time.perf_counter()
    response = client.post(url, json=body, headers=bearer(token))
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 300:
        raise SystemExit(f"{url} answered {response.status_code}: {response.text}")
    return elapsed


def hey_posts(
    base: str, path: str, tokens: list[str], body: dict[str, str], *, count: int = 0, seconds: float = 0
) -> list[float]:
    """Response times (ms) of ``body`` posted ``count`` times or for ``seconds`` by one ``hey``
    per token (one connection each, one request at a time), all at once; anything but 2xx ends
    the benchmark. A client in Go keeps the clients' CPU (and their part of each measured
    latency) small next to the server's, on a machine they share."""
    command = ["hey", "-c", "1", "-m", "POST", "-T", "application/json", "-o", "csv", "-d", json.dumps(body)]
    command += ["-n", str(count)] if count else ["-z", f"{seconds:g}s"]
    clients = [
        subprocess.Popen(
            [*command, "-H", f"Authorization: Bearer {token}", base + path], stdout=subprocess.PIPE, text=True
        )
        for token in tokens
    ]
    samples = []
    for client in clients:
        out, _ = client.communicate()
        if client.returncode:
            raise SystemExit(f"hey exited with {client.returncode}")
        rows = list(csv.DictReader(io.StringIO(out)))
        failed = [row["status-code"] for row in rows if not row["status-code"].startswith("2")]
        if failed or not rows:
            raise SystemExit(f"hey: {len(rows)} answers, {len(failed)} not 2xx ({sorted(set(failed))})")
        samples += [float(row["response-time"]) * 1000 for row in rows]
    return samples


def httpx_posts(
    base: str, path: str, tokens: list[str], body: dict[str, str], *, count: int = 0, seconds: float = 0
) -> list[float]:
    """``hey_posts`` from httpx clients, a thread per token."""

    def one_client(token: str) -> list[float]:
        with httpx.Client(base_url=base, timeout=30) as client:
            if count:
                return [timed_post(client, path, body, token) for _ in range(count)]
            deadline = time.perf_counter() + seconds
            samples = []
            while time.perf_counter() < deadline:
                samples.append(timed_post(client, path, body, token))
            return samples

    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        return [ms for samples in pool.map(one_client, tokens) for ms in samples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="sequential market orders")
    parser.add_argument(
        "--clients", type=int, default=8, help="clients placing orders at once, each its own trader"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the clients place orders")
    parser.add_argument(
        "--web-processes",
        type=int,
        default=os.cpu_count() or 1,
        help="daphne processes sharing the listening socket (default: the number of cores)",
    )
    parser.add_argument(
        "--client",
        choices=("hey", "httpx"),
        default="hey" if shutil.which("hey") else "httpx",
        help="what sends the orders: hey (apt-get install -y hey; the default when installed) or httpx threads",
    )
    parser.add_argument("--note", default="", help="a sentence for BENCHMARKS.md (what else ran, the code)")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base", "DEBUG": "false"}
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench-orders.sqlite3'}")
    env["THROTTLE_ANON"] = env["THROTTLE_USER"] = env["THROTTLE_AUTH"] = env["THROTTLE_WRITE"] = (
        "100000000/min"
    )
    env["LOG_LEVEL"] = "WARNING"
    env["DEMO_TRADER_EMAIL"], env["DEMO_TRADER_PASSWORD"] = TRADER_EMAIL, TRADER_PASSWORD
    database = env["DATABASE_URL"]
    if database.startswith("sqlite:///"):
        Path(database.removeprefix("sqlite:///")).unlink(missing_ok=True)
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis()
        env["REDIS_URL"] = redis.start()
    python = sys.executable
    processes: list[subprocess.Popen[bytes]] = []
    try:
        run([python, "manage.py", "migrate", "--noinput"], env)
        run([python, "manage.py", "seed_demo"], env)
        run([python, "manage.py", "pricefeed", "--once"], env)
        out = run([python, "manage.py", "shell", "-c", MAKE_TRADERS.format(count=args.clients)], env)
        tokens: list[str] = json.loads(out.split("TOKENS ", 1)[1])
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": BASE_DIR, "env": env}
        processes.append(subprocess.Popen([python, "manage.py", "pricefeed"], **quiet))  # type: ignore[call-overload]
        listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        port = listener.getsockname()[1]
        for _ in range(args.web_processes):
            processes.append(
                subprocess.Popen(  # type: ignore[call-overload]
                    [python, "-m", "daphne", "--fd", str(listener.fileno()), "marqetfi.asgi:application"],
                    pass_fds=(listener.fileno(),),
                    **quiet,
                )
            )
        listener.close()
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health", timeout=120)  # a loaded machine starts daphne slowly
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": TRADER_EMAIL, "password": TRADER_PASSWORD}, timeout=10
        )
        login.raise_for_status()
        access = login.json()["access"]
        with httpx.Client(base_url=base, timeout=30) as client:
            for token in [access] * 10 + tokens:  # warm up: connections, caches, each trader's position
                timed_post(client, "/api/v1/orders", ORDER, token)
            position = client.get("/api/v1/positions", headers=bearer(access)).json()["results"][0]["id"]
        send = hey_posts if args.client == "hey" else httpx_posts
        sequential = send(base, "/api/v1/orders", [access], ORDER, count=args.orders)
        started = time.perf_counter()
        concurrent = send(base, "/api/v1/orders", tokens, ORDER, seconds=args.seconds)
        concurrent_seconds = time.perf_counter() - started
        close = {"type": "market", "size": "0.0001"}
        closes = send(
            base, f"/api/v1/positions/{position}/close", [access], close, count=min(100, args.orders)
        )
    finally:
        processes_stop(processes)
        if redis is not None:
            redis.stop()

    rows = {
        "place market order, one client": percentiles(sequential),
        f"place market order, {args.clients} traders at once": percentiles(concurrent),
        "partial close at market, one client": percentiles(closes),
    }
    lines = [
        f"## Orders — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}. {args.web_processes} daphne process(es) on one socket, paper venue, "
        f"{'PostgreSQL' if database.startswith('postgres') else 'SQLite'}, price feed running, "
        f"orders sent by {'hey (one process per client)' if args.client == 'hey' else 'httpx threads'}. "
        f"`bench/orders.py --orders {args.orders} --clients {args.clients} --seconds {args.seconds:g} "
        f"--web-processes {args.web_processes} --client {args.client}`. {args.note}".rstrip(),
        "",
        "| run | requests | p50 ms | p95 ms | p99 ms | mean ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, figures in rows.items():
        lines.append(
            f"| {name} | {figures['n']:.0f} | {figures['p50']:.1f} | {figures['p95']:.1f} | "
            f"{figures['p99']:.1f} | {figures['mean']:.1f} |"
        )
    lines += [
        "",
        f"- {args.clients} traders at once: {len(concurrent) / concurrent_seconds:.0f} orders/s "
        f"through {args.web_processes} process(es)",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
