"""Price endpoint benchmark (run by hand: ``.venv/bin/python bench/prices.py``; needs ``hey``:
``apt-get install -y hey``).

Starts, on this machine: Redis (embedded unless REDIS_URL is set), our app on
``--web-processes`` daphne processes sharing one listening socket, with a warm price cache
and the price feed running, and a bare daphne + Redis GET baseline (bench/baseline_asgi.py)
on as many daphne processes. Then, with the same load tool against both:

- throughput at saturation (100 connections, 10 s) of GET /api/v1/prices/BTCUSD and of the
  baseline, then latency p50 / p95 / p99 at a fixed offered rate (default 300 requests/s
  from 100 connections: 1000 phones polling every few seconds) of both, ``--rounds`` times
  (the ratios are the rounds' medians), then the bulk GET /api/v1/prices?symbols=<50 symbols>;
- the cache hit ratio from /metrics.

Cores, as in production, where the feed and beat run on other machines than the web tier:
when the machine has more cores than web processes, the web servers of both sides run on
the last ``--web-processes`` cores (``taskset``) and everything else this script starts
(Redis, the feed, ``hey``, the script itself) on the others; on 2 cores, daphne on cpu 1
and the rest on cpu 0. Both sides get the same cores and only one is under load at a
time. ``--no-pin`` turns this off (then everything shares every core). A Redis given by
REDIS_URL is not ours to pin.

Prints the figures and their ratios against the targets and appends them, with the
machine, date and core layout, to BENCHMARKS.md. Absolute figures drift on shared machines;
the ratios are what we steer by.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import price_bench_env, processes_stop, run, wait_http  # noqa: E402
from marqetfi.embedded import EmbeddedRedis  # noqa: E402

THROUGHPUT_TARGET = 0.8  # cached single price at saturation, of the baseline's requests/s
P99_TARGET = 1.5  # p99 at the fixed rate, at most this times the baseline's


def cores_split(web_processes: int, pin: bool) -> tuple[list[int], list[int]] | None:
    """(web cores, other cores), or None when not pinning (asked not to, or no core to spare)."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) <= web_processes:
        return None
    return cores[-web_processes:], cores[:-web_processes]


def web_servers(
    app: str, processes: int, web_cores: list[int] | None, quiet: dict[str, object]
) -> tuple[list[subprocess.Popen[bytes]], str]:
    """``processes`` daphne processes serving ``app`` on one listening socket (the kernel hands each
    connection to whichever accepts first), on ``web_cores`` if given; and their base URL."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    pin = ["taskset", "-c", ",".join(map(str, web_cores))] if web_cores else []
    command = [*pin, sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), app]
    started = [
        subprocess.Popen(command, pass_fds=(listener.fileno(),), **quiet)  # type: ignore[call-overload]
        for _ in range(processes)
    ]
    port = listener.getsockname()[1]
    listener.close()
    return started, f"http://127.0.0.1:{port}"


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


def with_cpu(servers: list[subprocess.Popen[bytes]], load: Callable[[], dict[str, float]]) -> dict[str, Any]:
    """The figures of ``load``, the CPU the ``servers`` used meanwhile (in % of one core), and how
    busy each core of the machine was (everything on it, other work included): a side is only
    measured at saturation if its servers' core is the busy one."""
    handles = [psutil.Process(server.pid) for server in servers]
    before = [sum(handle.cpu_times()[:2]) for handle in handles]
    psutil.cpu_percent(percpu=True)
    started = time.monotonic()
    figures = load()
    elapsed = time.monotonic() - started
    cores = psutil.cpu_percent(percpu=True)
    used = sum(sum(handle.cpu_times()[:2]) - cpu for handle, cpu in zip(handles, before, strict=True))
    return {**figures, "web_cpu": 100 * used / elapsed, "cores": cores}


def cache_counters(base_url: str) -> tuple[float, float]:
    scrape = urllib.request.Request(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {price_bench_env()['METRICS_TOKEN']}"}
    )
    text = urllib.request.urlopen(scrape, timeout=5).read().decode()
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
    parser.add_argument("--rounds", type=int, default=1, help="rounds of ours-then-baseline runs")
    parser.add_argument(
        "--web-processes", type=int, default=1, help="daphne processes of each side (ours, the baseline)"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not keep the web servers on cores of their own"
    )
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    if not shutil.which("hey"):
        sys.exit("needs the load tool hey: apt-get install -y hey")
    split = cores_split(args.web_processes, pin=not args.no_pin)
    if split is not None and not shutil.which("taskset"):
        sys.exit("needs taskset (util-linux) to pin the web servers, or --no-pin")
    web_cores, other_cores = split if split is not None else (None, None)
    if other_cores:
        os.sched_setaffinity(0, other_cores)  # inherited by Redis, the feed and hey

    env = price_bench_env()
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
        quiet: dict[str, object] = {
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
            "cwd": BASE_DIR,
            "env": env,
        }
        processes.append(subprocess.Popen([python, "manage.py", "pricefeed"], **quiet))  # type: ignore[call-overload]
        app_servers, app = web_servers("marqetfi.asgi:application", args.web_processes, web_cores, quiet)
        processes += app_servers
        base_servers, baseline = web_servers(
            "bench.baseline_asgi:application", args.web_processes, web_cores, quiet
        )
        processes += base_servers
        wait_http(f"{app}/api/v1/prices/BTCUSD", timeout=120)  # a busy machine starts daphne slowly
        sample = urllib.request.urlopen(f"{app}/api/v1/prices/BTCUSD", timeout=5).read()
        run(
            [
                python,
                "-c",
                f"import redis; redis.Redis.from_url({env['REDIS_URL']!r}).set('bench:baseline:price', {sample!r})",
            ],
            env,
        )
        wait_http(baseline, timeout=120)
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
        load = {"seconds": args.seconds, "connections": args.connections}
        # Each round runs ours and the baseline back to back, so a swing in the machine's other
        # load falls on both sides of a ratio; the ratios reported are the rounds' medians.
        rounds = []
        for _ in range(args.rounds):
            rounds.append(
                {
                    "single_saturation": with_cpu(app_servers, lambda: hey(single_url, **load)),
                    "baseline_saturation": with_cpu(base_servers, lambda: hey(baseline, **load)),
                    "single_fixed_rate": with_cpu(
                        app_servers, lambda: hey(single_url, **load, rate=args.rate)
                    ),
                    "baseline_fixed_rate": with_cpu(
                        base_servers, lambda: hey(baseline, **load, rate=args.rate)
                    ),
                }
            )
        bulk = with_cpu(app_servers, lambda: hey(bulk_url, **load))
        hits, misses = cache_counters(app)
        hit_ratio = (hits - hits_before) / max(1.0, (hits - hits_before) + (misses - misses_before))
    finally:
        processes_stop(processes)
        if redis is not None:
            redis.stop()

    throughputs = [r["single_saturation"]["rps"] / r["baseline_saturation"]["rps"] for r in rounds]
    p99s = [r["single_fixed_rate"]["p99_ms"] / r["baseline_fixed_rate"]["p99_ms"] for r in rounds]
    throughput, p99 = statistics.median(throughputs), statistics.median(p99s)
    lines = [
        f"## Prices — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}. "
        f"Load: hey, {args.connections} connections, {args.seconds} s per run, {args.rounds} round(s); "
        f"fixed rate {args.rate} requests/s. "
        f"{args.web_processes} daphne process(es) per side; "
        + (
            f"web servers pinned to cpu {','.join(map(str, web_cores))}, Redis, feed and hey to cpu "
            f"{','.join(map(str, other_cores or []))}."
            if web_cores
            else "nothing pinned (every process on every core)."
        ),
        "",
        "| run | requests/s | p50 ms | p95 ms | p99 ms | non-2xx | web servers' CPU, % of a core | each core busy, % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = [(f"{name} #{n}", figures) for n, r in enumerate(rounds, 1) for name, figures in r.items()]
    for name, figures in [*rows, ("bulk50_saturation", bulk)]:
        lines.append(
            f"| {name} | {figures['rps']:.0f} | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | "
            f"{figures['p99_ms']:.1f} | {figures['non_2xx']:.0f} | {figures['web_cpu']:.0f} | "
            f"{' / '.join(f'{busy:.0f}' for busy in figures['cores'])} |"
        )
    lines += [
        "",
        f"- cached single price at saturation: {throughput:.2f} of the baseline's throughput, median of "
        f"{', '.join(f'{ratio:.2f}' for ratio in throughputs)} "
        f"(target >= {THROUGHPUT_TARGET}: {'met' if throughput >= THROUGHPUT_TARGET else 'not met'})",
        f"- p99 at {args.rate} requests/s: {p99:.2f}x the baseline's, median of "
        f"{', '.join(f'{ratio:.2f}' for ratio in p99s)} "
        f"(target <= {P99_TARGET}x: {'met' if p99 <= P99_TARGET else 'not met'})",
        f"- bulk (50 symbols) at saturation: {bulk['rps']:.0f} requests/s = {bulk['rps'] * 50:.0f} prices/s",
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
        separator = "" if path.read_text().endswith("\n\n") else "\n"
        with path.open("a") as handle:
            handle.write(separator + report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
