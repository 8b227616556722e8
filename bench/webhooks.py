"""Webhook delivery benchmark (run by hand: ``.venv/bin/python bench/webhooks.py``; not a test).

Measures the delivery engine end to end: ``publish`` -> the outbox dispatcher creates one
``WebhookDelivery`` per endpoint and schedules its attempt task -> Celery workers claim it,
sign it and POST it -> a local receiver.

1. Setup. Uses ``DATABASE_URL`` and ``REDIS_URL`` from the environment (PostgreSQL and a real
   Redis are what it is meant for; an embedded Redis is started when ``REDIS_URL`` is unset)
   and migrates the database. Creates a fresh bench user and ``--endpoints`` webhook
   endpoints (default 1) pointing at the receiver, each with its own encrypted ``whsec_``
   secret, the way the app stores them; ``ordered=False`` unless ``--ordered``. Every
   process gets ``WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8`` and ``WEBHOOK_REQUIRE_HTTPS=false``
   so loopback http receivers pass the SSRF check. The Celery queue (``CELERY_QUEUE``,
   default ``wh-bench``) is purged first.
2. Receiver. A separate process (this script with ``--receiver``): aiohttp's low-level
   server on 127.0.0.1 answering 200 with an empty body. It records, per endpoint and ``webhook-id``, the
   first receipt (wall clock) and the latency from the publish time stamped in the event's
   data, counts duplicates, and verifies every ``--verify-every``-th request's signature
   with the official ``standardwebhooks`` package (a failure fails the run).
3. Workers. ``--workers`` Celery worker processes (default 2), each ``--concurrency 1
   --pool prefork`` on the queue, log level WARNING, started in their own session and
   pinged until they answer.
4. Load. ``--events`` events (default 2000) published from this process through
   ``marqetfi.core.events.publish`` (Django set up here), at ``--rate`` per second or as
   fast as possible (``--rate 0``, the default), each stamped with ``time.time()`` just
   before ``publish``.
5. Figures: deliveries per second from the first publish to the last receipt, the publish
   rate, event-to-receipt latency p50 / p95 / p99 / max, received vs expected, duplicates,
   signatures verified, and the CPU seconds of the workers, the receiver and this process.
   Exits non-zero when a delivery is missing after ``--timeout`` seconds, a signature does
   not verify, or a delivery ended in a state other than succeeded.

``--write`` appends the figures, with the machine and date, to BENCHMARKS.md (only when
every check passed). Quick check: ``--events 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import run, wait_http  # noqa: E402

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/marqetfi_wh_bench"
EVENT_TYPE = "bench.webhook"
TARGET_PER_SECOND = 200


# --- the receiver (a process of its own, no Django) ------------------------------------------


def receiver_main(port: int, verify_every: int) -> None:
    from aiohttp import web
    from standardwebhooks import Webhook

    secrets = json.loads(os.environ.pop("BENCH_WEBHOOK_SECRETS", "{}"))  # endpoint path -> secret
    verifiers = {path: Webhook(secret) for path, secret in secrets.items()}
    first_at: dict[str, float] = {}
    latencies: list[float] = []
    counts = {"requests": 0, "duplicates": 0, "verified": 0, "bad_signatures": 0}

    async def handle(request: web.BaseRequest) -> web.Response:
        if request.method == "GET":
            if request.path == "/stats":
                return web.json_response({**counts, "first_at": first_at, "latencies_ms": latencies})
            return web.json_response({"received": len(first_at), **counts})
        body = await request.read()
        now = time.time()
        counts["requests"] += 1
        webhook_id = (
            request.path + " " + request.headers.get("webhook-id", "")
        )  # an event goes to each endpoint
        if webhook_id in first_at:
            counts["duplicates"] += 1
            return web.Response(status=200)
        first_at[webhook_id] = now
        payload = json.loads(body)
        latencies.append((now - payload["data"]["bench_sent_at"]) * 1000)
        if counts["requests"] % verify_every == 1 or verify_every == 1:
            try:
                verifiers[request.path].verify(body, dict(request.headers))
                counts["verified"] += 1
            except Exception:  # noqa: BLE001 - any verification failure is counted
                counts["bad_signatures"] += 1
        return web.Response(status=200)

    async def serve() -> None:
        server = web.Server(handle, access_log=None)
        loop = asyncio.get_running_loop()
        await loop.create_server(server, "127.0.0.1", port, backlog=1024)
        print(f"RECEIVER listening on {port}", flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    asyncio.run(serve())


# --- helpers ----------------------------------------------------------------------------------


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def process_start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        command, cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def process_group_stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process, then SIGKILL what is left of its own group (a worker's pool child)."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """CPU (user + system) of a process and its children still alive."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            times = proc.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def http_json(url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


# --- the run ----------------------------------------------------------------------------------


def main() -> int:  # noqa: PLR0912 - one linear script: setup, load, report
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=1, help="endpoints of the bench user")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (concurrency 1)")
    parser.add_argument("--rate", type=float, default=0.0, help="events per second; 0: as fast as possible")
    parser.add_argument("--ordered", action="store_true", help="ordered endpoints (default: unordered)")
    parser.add_argument("--verify-every", type=int, default=10, help="verify every Nth signature")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait after the last publish")
    parser.add_argument("--write", action="store_true", help="append the figures to BENCHMARKS.md")
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        receiver_main(args.port, max(args.verify_every, 1))
        return 0

    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE)
    os.environ.setdefault("CELERY_QUEUE", "wh-bench")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "WEBHOOK_REQUIRE_HTTPS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    redis = None
    if not os.environ.get("REDIS_URL"):
        from marqetfi.embedded import EmbeddedRedis

        redis = EmbeddedRedis()
        os.environ["REDIS_URL"] = redis.start()
    env = dict(os.environ)
    python = sys.executable
    log_dir = BASE_DIR / "var" / "bench-webhooks"
    log_dir.mkdir(parents=True, exist_ok=True)
    run([python, "manage.py", "migrate", "--noinput"], env)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db.models import Count

    from marqetfi.celery import app
    from marqetfi.core.crypto import encrypt
    from marqetfi.core.events import publish
    from marqetfi.embedded import free_port
    from webhooks.models import WebhookDelivery, WebhookEndpoint
    from webhooks.signing import secret_new

    queue = env["CELERY_QUEUE"]
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        purged = channel.queue_purge(queue) or 0
    if purged:
        print(f"purged {purged} stale tasks from {queue}")

    port = free_port()
    user = get_user_model().objects.create_user(
        email=f"bench-wh-{uuid.uuid4().hex[:8]}@marqetfi.local", password=None
    )
    secrets: dict[str, str] = {}
    for index in range(args.endpoints):
        secret = secret_new()
        path = f"/hooks/{index}"
        secrets[path] = secret
        WebhookEndpoint.objects.create(
            user=user,
            url=f"http://127.0.0.1:{port}{path}",
            secret_encrypted=encrypt(secret),
            ordered=args.ordered,
            description=f"bench endpoint {index}",
        )
    expected = args.events * args.endpoints

    processes: list[subprocess.Popen[bytes]] = []
    hostnames = [f"wh-bench-{n}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}" for n in range(args.workers)]
    try:
        receiver = process_start(
            [python, __file__, "--receiver", "--port", str(port), "--verify-every", str(args.verify_every)],
            {**env, "BENCH_WEBHOOK_SECRETS": json.dumps(secrets)},
            log_dir / "receiver.log",
        )
        processes.append(receiver)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/count")
        workers = []
        for index, hostname in enumerate(hostnames):
            command = [
                python, "-m", "celery", "-A", "marqetfi", "worker",
                "--loglevel", args.worker_loglevel, "--queues", queue, "--hostname", hostname,
                "--concurrency", "1", "--pool", "prefork",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ]  # fmt: skip
            workers.append(process_start(command, env, log_dir / f"worker-{index}.log"))
        processes.extend(workers)
        deadline = time.monotonic() + 60
        answered: set[str] = set()
        while answered != set(hostnames):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise SystemExit(f"workers did not start; see {log_dir}")
            for reply in app.control.ping(destination=hostnames, timeout=1.0) or []:
                answered.update(reply)
        print(f"{args.workers} workers up; publishing {args.events} events to {args.endpoints} endpoint(s)")

        cpu_before = {
            "workers": sum(cpu_seconds(w.pid) for w in workers),
            "receiver": cpu_seconds(receiver.pid),
        }
        own_before = time.process_time()
        first_publish = time.time()
        for n in range(args.events):
            if args.rate > 0:
                delay = first_publish + n / args.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            publish(user_id=user.pk, type=EVENT_TYPE, data={"n": n, "bench_sent_at": time.time()})
        last_publish = time.time()
        own_cpu = time.process_time() - own_before

        deadline = time.monotonic() + args.timeout
        received = 0
        while time.monotonic() < deadline:
            received = http_json(f"{base}/count")["received"]
            if received >= expected:
                break
            time.sleep(0.05)
        cpu = {
            "workers": sum(cpu_seconds(w.pid) for w in workers) - cpu_before["workers"],
            "receiver": cpu_seconds(receiver.pid) - cpu_before["receiver"],
            "publisher": own_cpu,
        }
        time.sleep(0.5)  # late duplicates, if any
        stats = http_json(f"{base}/stats")
    finally:
        for process in processes:
            process_group_stop(process)
        if redis is not None:
            redis.stop()

    statuses = dict(WebhookDelivery.objects.filter(user=user).values_list("status").annotate(n=Count("pk")))
    receipts = sorted(stats["first_at"].values())
    latencies = sorted(stats["latencies_ms"])
    received = len(receipts)
    span = (receipts[-1] - first_publish) if receipts else float("nan")
    publish_seconds = last_publish - first_publish
    figures = {
        "deliveries_per_second": received / span if receipts else 0.0,
        "publish_per_second": args.events / publish_seconds,
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
    }
    failures = []
    if received != expected:
        failures.append(f"received {received} of {expected} deliveries")
    if stats["bad_signatures"]:
        failures.append(f"{stats['bad_signatures']} signatures did not verify")
    if statuses.get("succeeded", 0) != expected:
        failures.append(f"delivery states: {statuses}")

    database = os.environ["DATABASE_URL"]
    now = datetime.now(UTC)
    lines = [
        f"## Webhook deliveries — {now:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}. {'PostgreSQL' if database.startswith('postgres') else 'SQLite'}, "
        f"Redis broker, {args.workers} Celery worker processes (prefork, concurrency 1), "
        f"{args.endpoints} {'ordered' if args.ordered else 'unordered'} endpoint(s) on an aiohttp receiver "
        f"on loopback, {args.events} events published "
        f"{'as fast as possible' if args.rate <= 0 else f'at {args.rate:g}/s'} from one process. "
        "Command: `.venv/bin/python bench/webhooks.py "
        f"--events {args.events} --endpoints {args.endpoints} --workers {args.workers}"
        f"{' --ordered' if args.ordered else ''}{f' --rate {args.rate:g}' if args.rate > 0 else ''}`.",
        "",
        "| deliveries | received | duplicates | deliveries/s | publish/s | p50 ms | p95 ms | p99 ms | max ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {expected} | {received} | {stats['duplicates']} | {figures['deliveries_per_second']:.0f} | "
        f"{figures['publish_per_second']:.0f} | {figures['p50']:.1f} | {figures['p95']:.1f} | "
        f"{figures['p99']:.1f} | {figures['max']:.1f} |",
        "",
        f"- first publish to last receipt: {span:.2f} s; publishing took {publish_seconds:.2f} s",
        f"- CPU over the run: workers {cpu['workers']:.1f} s "
        f"({cpu['workers'] / max(received, 1) * 1000:.2f} ms per delivery), receiver {cpu['receiver']:.1f} s, "
        f"publisher {cpu['publisher']:.1f} s ({cpu['publisher'] / args.events * 1000:.2f} ms per event)",
        f"- signatures verified: {stats['verified']} (every {args.verify_every}th), failed: {stats['bad_signatures']}",
        f"- delivery states: {statuses}",
        f"- target (issue): >= {TARGET_PER_SECOND} deliveries/s with 2 workers: "
        f"{'met' if figures['deliveries_per_second'] >= TARGET_PER_SECOND else 'not met'}",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    if args.write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
