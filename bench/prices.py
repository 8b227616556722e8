"""Price endpoint benchmark (run by hand: ``.venv/bin/python bench/prices.py``; needs ``hey``).

Starts, on this machine: Redis (embedded unless REDIS_URL is set), our app on daphne with a
warm price cache and the price feed running, and a bare daphne + Redis GET baseline
(bench/baseline_asgi.py). Then, with the same load tool against both:

- throughput at saturation (100 connections, 10 s) of GET /api/v1/prices/BTCUSD, of the
  bulk GET /api/v1/prices?symbols=<50 symbols> and of the baseline;
- latency p50 / p95 / p99 at a fixed offered rate (default 300 requests/s from 100
  connections: 1000 phones polling every few seconds) for our single price and the baseline;
- the cache hit ratio from /metrics.

Prints the figures and their ratios and appends them, with the machine and date, to
BENCHMARKS.md. Absolute figures drift on shared machines; the ratios are what we steer by.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import processes_stop, run, wait_http  # noqa: E402
from marqetfi.embedded import EmbeddedRedis, free_port  # noqa: E402


def hey(url: str, *, seconds: int, connections: int, rate: int | None = None) -> dict[str, float]:
    command = ["hey", "-z", f"{seconds}s", "-c", str(connections)]
    if rate:
        command += ["-q", f"{rate / connections:.3f}"]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "95", "99"):
        match = re.search(rf"\s{pct}%+ in ([\d.]+) secs", output)
        figures[f"p{pct}_ms"] = float(match.group(1)) * 1000 if match else float("nan")
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", output))
    figures["non_2xx"] = sum(int(n) for code, n in codes.items() if not code.startswith("2"))
    return figures


def cache_counters(base_url: str) -> tuple[float, float]:
    text = urllib.request.urlopen(f"{base_url}/metrics", timeout=5).read().decode()
    hits = sum(
        float(v)
        for v in re.findall(r"^marqetfi_price_cache_hits_total(?:\{[^}]*\})? ([\d.e+]+)$", text, re.M)
    )
    misses = sum(
        float(v)
        for v in re.findall(r"^marqetfi_price_cache_misses_total(?:\{[^}]*\})? ([\d.e+]+)$", text, re.M)
    )
    return hits, misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--rate", type=int, default=300, help="fixed offered rate, requests/s")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    if not shutil.which("hey"):
        sys.exit("needs the load tool hey: apt-get install hey")

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base", "DEBUG": "false"}
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench.sqlite3'}")
    env["THROTTLE_ANON"] = env["THROTTLE_USER"] = "100000000/min"
    env["LOG_LEVEL"] = "WARNING"
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
        app_port, base_port = free_port(), free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": BASE_DIR, "env": env}
        processes.append(subprocess.Popen([python, "manage.py", "pricefeed"], **quiet))  # type: ignore[call-overload]
        processes.append(
            subprocess.Popen(  # type: ignore[call-overload]
                [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(app_port), "marqetfi.asgi:application"],
                **quiet,
            )
        )
        processes.append(
            subprocess.Popen(  # type: ignore[call-overload]
                [
                    python,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(base_port),
                    "bench.baseline_asgi:application",
                ],
                **quiet,
            )
        )
        app, baseline = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{base_port}"
        wait_http(f"{app}/api/v1/prices/BTCUSD")
        sample = urllib.request.urlopen(f"{app}/api/v1/prices/BTCUSD", timeout=5).read()
        run(
            [
                python,
                "-c",
                f"import redis; redis.Redis.from_url({env['REDIS_URL']!r}).set('bench:baseline:price', {sample!r})",
            ],
            env,
        )
        wait_http(baseline)
        pairs = json.loads(urllib.request.urlopen(f"{app}/api/v1/pairs?limit=200", timeout=5).read())[
            "results"
        ]
        symbols = [p["symbol"] for p in pairs]
        bulk_symbols = (symbols * (50 // max(1, len(symbols)) + 1))[:50]
        single_url, bulk_url = (
            f"{app}/api/v1/prices/BTCUSD",
            f"{app}/api/v1/prices?symbols={','.join(bulk_symbols)}",
        )

        hits_before, misses_before = cache_counters(app)
        results = {
            "single_saturation": hey(single_url, seconds=args.seconds, connections=args.connections),
            "bulk50_saturation": hey(bulk_url, seconds=args.seconds, connections=args.connections),
            "baseline_saturation": hey(baseline, seconds=args.seconds, connections=args.connections),
            "single_fixed_rate": hey(
                single_url, seconds=args.seconds, connections=args.connections, rate=args.rate
            ),
            "baseline_fixed_rate": hey(
                baseline, seconds=args.seconds, connections=args.connections, rate=args.rate
            ),
        }
        hits, misses = cache_counters(app)
        hit_ratio = (hits - hits_before) / max(1.0, (hits - hits_before) + (misses - misses_before))
    finally:
        processes_stop(processes)
        if redis is not None:
            redis.stop()

    single, base = results["single_saturation"], results["baseline_saturation"]
    fixed, base_fixed = results["single_fixed_rate"], results["baseline_fixed_rate"]
    lines = [
        f"## Prices — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Load: hey, {args.connections} connections, {args.seconds} s per run; fixed rate {args.rate} requests/s.",
        "",
        "| run | requests/s | p50 ms | p95 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, figures in results.items():
        lines.append(
            f"| {name} | {figures['rps']:.0f} | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | "
            f"{figures['p99_ms']:.1f} | {figures['non_2xx']:.0f} |"
        )
    lines += [
        "",
        f"- cached single price at saturation: {single['rps'] / base['rps']:.2f} of the baseline's throughput (target >= 0.5)",
        f"- p99 at {args.rate} requests/s: {fixed['p99_ms']:.1f} ms vs baseline {base_fixed['p99_ms']:.1f} ms "
        f"= {fixed['p99_ms'] / base_fixed['p99_ms']:.2f}x (target <= 2x and < 200 ms)",
        f"- bulk (50 symbols) at saturation: {results['bulk50_saturation']['rps']:.0f} requests/s "
        f"= {results['bulk50_saturation']['rps'] * 50:.0f} prices/s",
        f"- price cache hit ratio during the runs: {hit_ratio:.3f}",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        path = BASE_DIR / "BENCHMARKS.md"
        if not path.exists():
            path.write_text(
                "# Benchmarks\n\nRun by hand; newest last. Ratios matter more than absolute figures.\n\n"
            )
        with path.open("a") as handle:
            handle.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
