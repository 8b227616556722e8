"""What the HTTP benchmarks share: running manage.py steps, starting the web tier, waiting for
a server, stopping them."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

from marqetfi.webserver import web_processes_default

BASE_DIR = Path(__file__).resolve().parents[1]


def price_bench_env() -> dict[str, str]:
    """The environment the price benchmarks run our app in: no DEBUG, throttles out of the
    way, quiet logs, SQLite unless ``DATABASE_URL`` is set (``REDIS_URL``: the caller's)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base", "DEBUG": "false"}
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench.sqlite3'}")
    env["THROTTLE_ANON"] = env["THROTTLE_USER"] = "100000000/min"
    env["LOG_LEVEL"] = "WARNING"
    env.setdefault("METRICS_TOKEN", "bench-metrics-scraper")  # cache counters are read from /metrics
    return env


def run(command: list[str], env: dict[str, str]) -> str:
    return subprocess.run(command, cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True).stdout


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Until ``url`` answers at all (any status: a 4xx also means the server is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def processes_stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def web_processes_argument(parser: argparse.ArgumentParser) -> None:
    """``--web-processes N``: daphne processes of the web tier (default: WEB_PROCESSES, else the cores)."""
    parser.add_argument(
        "--web-processes",
        type=int,
        default=web_processes_default(),
        help="daphne processes sharing the port (default: WEB_PROCESSES, else one per core)",
    )


def web_tier_start(
    port: int, env: dict[str, str], processes: int, *, quiet: bool = True
) -> subprocess.Popen[bytes]:
    """The web tier as production runs it (``marqetfi.webserver``) on 127.0.0.1:``port``.

    Returns the supervisor at once; wait for it with ``wait_http``. ``processes_stop`` stops
    it and, through it, its daphne processes; ``web_tier_pids`` names those (CPU, memory).
    """
    output = subprocess.DEVNULL if quiet else None
    command = [sys.executable, "-m", "marqetfi.webserver", "--port", str(port), "--processes", str(processes)]
    return subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=output, stderr=output)


def web_tier_pids(tier: subprocess.Popen[bytes], processes: int, timeout: float = 30.0) -> list[int]:
    """The pids of the tier's daphne processes, once all ``processes`` of them are running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(tier.pid).children()
        if len(children) >= processes:
            return [child.pid for child in children]
        time.sleep(0.1)
    raise RuntimeError(f"the web tier did not start {processes} processes in {timeout} s")
