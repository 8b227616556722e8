"""In-process profile of the cached-price route (run by hand: ``.venv/bin/python bench/prices_profile.py``).

Calls ``CachedPriceRoute`` for ``GET /api/v1/prices/BTCUSD`` ``--calls`` times on one event
loop, without a server, from ``--concurrency`` callers at once (as a server's connections
would), and the bare baseline (``bench/baseline_asgi.py``: one Redis GET) as many times: each
once plain (CPU time of this process per call: our Python plus the socket calls; wall time
depends on Redis and the machine's load) and once under cProfile (function calls per call,
the top functions by own time). Daphne's own cost per request is the same on both sides and
is left out.

Uses ``DATABASE_URL`` (default: the benchmark's SQLite file) and ``REDIS_URL`` (default: an
embedded Redis); migrates and seeds the demo pairs and one price per pair first.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import price_bench_env, run  # noqa: E402
from marqetfi.embedded import EmbeddedRedis  # noqa: E402

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/api/v1/prices/BTCUSD",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"hey/0.0.1"), (b"accept-encoding", b"gzip")],
    "client": ("127.0.0.1", 50000),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _calls(app: Callable[..., Awaitable[None]], calls: int, concurrency: int) -> tuple[float, float]:
    """(CPU, wall) seconds per call of ``app`` from ``concurrency`` callers on the running loop;
    checks every answer was a 200 from ``app``."""
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def caller(count: int) -> None:
        for _ in range(count):
            await app(dict(SCOPE), _receive, send)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(calls // concurrency) for _ in range(concurrency)))
    done = calls // concurrency * concurrency
    cpu, wall = (time.process_time() - cpu) / done, (time.perf_counter() - wall) / done
    if statuses.count(200) != done:
        raise RuntimeError(f"expected {done} answers of 200, got {len(statuses)}: {set(statuses)}")
    return cpu, wall


def _profile(name: str, app: Callable[..., Awaitable[None]], calls: int, concurrency: int, top: int) -> str:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_calls(app, 200, concurrency))  # warm: catalogue, script, connections
        cpu, wall = loop.run_until_complete(_calls(app, calls, concurrency))
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(_calls(app, calls, concurrency))
        profiler.disable()
    finally:
        loop.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    function_calls = stats.total_calls / calls  # type: ignore[attr-defined]  # set by pstats
    return (
        f"### {name}, {concurrency} callers: {cpu * 1000:.3f} ms CPU and {wall * 1000:.3f} ms wall "
        f"per call, {function_calls:.0f} Python function calls per call ({calls} calls)\n\n{out.getvalue()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100, help="callers at once")
    parser.add_argument("--top", type=int, default=25, help="functions listed, by own time")
    args = parser.parse_args()

    env = price_bench_env()
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis()
        env["REDIS_URL"] = redis.start()
    try:
        python = sys.executable
        run([python, "manage.py", "migrate", "--noinput"], env)
        run([python, "manage.py", "seed_demo"], env)
        run([python, "manage.py", "pricefeed", "--once"], env)
        os.environ.update(env)

        import django

        django.setup()
        import redis as sync_redis

        from marqetfi.asgi import application  # noqa: F401  (the process as daphne loads it)
        from pricing.fast_path import CachedPriceRoute

        async def django_unreachable(scope: Any, receive: Any, send: Any) -> None:
            raise RuntimeError(f"handed to Django: {scope['path']}")

        route = CachedPriceRoute(django_unreachable)
        sample: bytes = b""

        async def capture(message: Mapping[str, Any]) -> None:
            nonlocal sample
            if message["type"] == "http.response.body":
                sample = message["body"]

        asyncio.run(route(dict(SCOPE), _receive, capture))
        sync_redis.Redis.from_url(env["REDIS_URL"]).set("bench:baseline:price", sample)
        from bench import baseline_asgi

        for concurrency in sorted({1, args.concurrency}):
            print(_profile("cached-price route", route, args.calls, concurrency, args.top))
            baseline_asgi._client = sync_redis.asyncio.Redis.from_url(env["REDIS_URL"])  # this loop's
            print(
                _profile(
                    "baseline (one Redis GET)", baseline_asgi.application, args.calls, concurrency, args.top
                )
            )
    finally:
        if redis is not None:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
