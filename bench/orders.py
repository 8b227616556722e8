"""Order placement latency over HTTP on the paper venue (run by hand: ``.venv/bin/python bench/orders.py``).

Starts, on this machine: Redis (embedded unless REDIS_URL is set), a fresh database with the
demo data (the paper market and the funded demo trader), the price feed and our app on
daphne. Signs the demo trader in, then places market orders (``POST /api/v1/orders``, a
small long on BTCUSD each, adding to one position) one after another and from several
clients at once, and closes part of the position the same way; reports p50 / p95 / p99 of
each and appends them, with the machine and date, to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
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
from marqetfi.embedded import EmbeddedRedis, free_port  # noqa: E402

TRADER_EMAIL = "bench-trader@marqetfi.local"
TRADER_PASSWORD = "bench-trader-password-1"
ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "5", "leverage": "2"}


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


def timed_post(client: httpx.Client, url: str, body: dict[str, str]) -> float:
    started = time.perf_counter()
    response = client.post(url, json=body)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 300:
        raise SystemExit(f"{url} answered {response.status_code}: {response.text}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="sequential market orders")
    parser.add_argument("--clients", type=int, default=4, help="clients placing orders at once")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base", "DEBUG": "false"}
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench-orders.sqlite3'}")
    env["THROTTLE_ANON"] = env["THROTTLE_USER"] = env["THROTTLE_AUTH"] = "100000000/min"
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
        port = free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": BASE_DIR, "env": env}
        processes.append(subprocess.Popen([python, "manage.py", "pricefeed"], **quiet))  # type: ignore[call-overload]
        processes.append(
            subprocess.Popen(  # type: ignore[call-overload]
                [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "marqetfi.asgi:application"],
                **quiet,
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health")
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": TRADER_EMAIL, "password": TRADER_PASSWORD}, timeout=10
        )
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for _ in range(10):  # warm up: connections, caches, the position row
                timed_post(client, "/api/v1/orders", ORDER)
            sequential = [timed_post(client, "/api/v1/orders", ORDER) for _ in range(args.orders)]

        def one_client(_: int) -> list[float]:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                return [
                    timed_post(client, "/api/v1/orders", ORDER) for _ in range(args.orders // args.clients)
                ]

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            concurrent = [ms for samples in pool.map(one_client, range(args.clients)) for ms in samples]
        concurrent_seconds = time.perf_counter() - started
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            position = client.get("/api/v1/positions").json()["results"][0]["id"]
            closes = [
                timed_post(
                    client, f"/api/v1/positions/{position}/close", {"type": "market", "size": "0.0001"}
                )
                for _ in range(min(100, args.orders))
            ]
    finally:
        processes_stop(processes)
        if redis is not None:
            redis.stop()

    rows = {
        "place market order, one client": percentiles(sequential),
        f"place market order, {args.clients} clients at once": percentiles(concurrent),
        "partial close at market, one client": percentiles(closes),
    }
    lines = [
        f"## Orders — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}. One daphne process, paper venue, "
        f"{'PostgreSQL' if database.startswith('postgres') else 'SQLite'}, price feed running.",
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
        f"- {args.clients} clients at once: {len(concurrent) / concurrent_seconds:.0f} orders/s through one process",
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
