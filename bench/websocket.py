"""WebSocket stream benchmark (run by hand: ``.venv/bin/python bench/websocket.py``; not a test).

Against our app on daphne (started here, or a running one with ``--url``), following the
``/ws`` protocol of API.md:

1. Setup. Without ``--url`` it starts, like bench/orders.py: Redis (embedded unless REDIS_URL
   is set), a fresh database with the demo data, one ``pricefeed --once`` to fill the price
   cache, and daphne. No feed process runs, so the only ticks are the benchmark's. It then
   makes ``--sockets / 2`` bench users (``bench-ws-<n>@marqetfi.local``, no password) with
   an access token each, through a Django shell, and signs the demo trader in over REST.
2. Sockets. ``--sockets`` WebSockets (default 2000) spread over ``--client-procs`` processes
   (asyncio in each, open-file limit raised). Every socket subscribes to
   ``--symbols-per-socket`` of ``--symbols`` (``prices:<SYMBOL>``); every other socket first
   authenticates as its own bench user and also subscribes to ``orders`` and ``positions``;
   one of those is the demo trader. Server ``ping`` messages are answered with ``pong``.
   A socket counts as open once it has its ``subscribed`` and the snapshot of every channel,
   so the load starts after the connection wave's snapshots, not in their tail.
3. Load, for ``--seconds``: a feed-like process (this script with ``--feed``, Django set
   up) calls ``pricing.services.prices.price_tick_ingest`` at ``--rate`` ticks per second
   over the symbols, the call the real feed makes (cache, fan-out, tick hooks), each tick a
   new price stamped with the wall clock; meanwhile ``--orders`` small market orders are
   placed over REST as the demo trader.
4. Figures: tick-to-client latency p50 / p95 / p99 / max (receive time minus the tick's
   ``ts``, both this machine's clock), messages per second received over all sockets,
   order-to-``order_update`` latency on the trader's socket, the server's CPU over the
   run, and its memory per socket: daphne's RSS (psutil) after the sockets are open and
   subscribed minus before, divided by the socket count.

It checks itself and exits non-zero when a check fails: every socket got ``hello`` and a
``subscribed`` naming its channels, no ``error`` message and no unexpected close, every
socket saw a price update of each of its symbols, the trader's socket saw an
``order_update`` and a ``position_update`` for the orders, and no other user's socket
saw a user event. Price updates are conflated by the server (a few per second per symbol);
keep ``--rate / len(--symbols)`` at or under that rate, or latency includes the hold.

``--write`` appends the figures, with the machine and date, to BENCHMARKS.md (only when
every check passed). Quick check that everything runs: ``--sockets 50 --seconds 5``.

Against a running server: ``--url ws://127.0.0.1:8000/ws`` with this process's environment
(``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``, ``DEMO_TRADER_EMAIL`` /
``DEMO_TRADER_PASSWORD``) matching the server's, since users, tokens and ticks are made
directly; the memory figure needs the server's pid (``--server-pid``, else the process
listening on the URL's port, if this user may see it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench.processes import processes_stop, run, wait_http  # noqa: E402
from marqetfi.embedded import EmbeddedRedis  # noqa: E402

TRADER_EMAIL = "bench-ws-trader@marqetfi.local"
TRADER_PASSWORD = "bench-ws-trader-password-1"
ORDER = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "5", "leverage": "2"}
USER_EVENT_TYPES = frozenset({"order_update", "trade_update", "position_update", "deposit_update"})
MAKE_TOKENS = """
import json
from accounts.models import User
from rest_framework_simplejwt.tokens import AccessToken
emails = [f"bench-ws-{{n}}@marqetfi.local" for n in range({count})]
known = set(User.objects.filter(email__in=emails).values_list("email", flat=True))
fresh = [User(email=e) for e in emails if e not in known]
for user in fresh:
    user.set_unusable_password()
User.objects.bulk_create(fresh, batch_size=500)
users = {{u.email: u for u in User.objects.filter(email__in=emails)}}
print('TOKENS ' + json.dumps([str(AccessToken.for_user(users[e])) for e in emails]))
"""


# --- one client process ----------------------------------------------------------------


@dataclass(frozen=True)
class SocketSpec:
    token: str | None
    channels: tuple[str, ...]
    trader: bool = False


@dataclass
class SocketResult:
    hello: bool = False
    subscribed: bool = False
    errors: list[str] = field(default_factory=list)
    closed: str | None = None
    symbols_seen: set[str] = field(default_factory=set)
    snapshots: set[Any] = field(default_factory=set)  # channels whose snapshot arrived
    user_events: dict[str, int] = field(default_factory=dict)
    order_events: dict[str, float] = field(default_factory=dict)  # order id -> first order_update time


@dataclass
class ClientReport:
    sockets: list[SocketResult]
    latencies_ms: list[float]
    messages: int
    measured_seconds: float
    open_seconds: float


@dataclass(frozen=True)
class ClientJob:
    index: int
    url: str
    specs: list[SocketSpec]
    connect_concurrency: int


def client_main(job: ClientJob, events: tuple[Event, Event], out: Queue[Any]) -> None:
    """One client process: its share of the sockets, on one event loop."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, len(job.specs) + 1024)), hard))
    asyncio.run(client_run(job, events, out))


async def client_run(job: ClientJob, events: tuple[Event, Event], out: Queue[Any]) -> None:
    url, specs, index = job.url, job.specs, job.index
    measure, stop = events
    results = [SocketResult() for _ in specs]
    latencies: list[float] = []
    counted = [0]
    measuring = [False]  # this process's copy of the shared event, read per message
    gate = asyncio.Semaphore(job.connect_concurrency)
    opened = [asyncio.Event() for _ in specs]

    def note(message: dict[str, Any], spec: SocketSpec, result: SocketResult, ready: asyncio.Event) -> None:
        """Record one message of a socket; ``ready`` once subscribed with every snapshot in."""
        kind = message.get("type")
        if message.get("snapshot"):
            result.snapshots.add(message.get("channel"))
            if result.subscribed and result.snapshots >= set(spec.channels):
                ready.set()
        if kind == "price_update":
            result.symbols_seen.add(message["channel"])
            if measuring[0] and not message.get("snapshot"):
                sent = datetime.fromisoformat(message["data"]["ts"]).timestamp()
                latencies.append((time.time() - sent) * 1000)
        elif kind == "subscribed":
            result.subscribed = set(spec.channels) <= set(message.get("channels", []))
            if not result.subscribed or result.snapshots >= set(spec.channels):
                ready.set()
        elif kind == "error":
            result.errors.append(str(message.get("code")))
            ready.set()
        elif kind in USER_EVENT_TYPES and not message.get("snapshot"):
            result.user_events[kind] = result.user_events.get(kind, 0) + 1
            order_id = (message.get("data") or {}).get("id")
            if kind == "order_update" and order_id and order_id not in result.order_events:
                result.order_events[str(order_id)] = time.time()

    async def one_socket(spec: SocketSpec, result: SocketResult, ready: asyncio.Event) -> None:
        try:
            async with gate:
                ws = await connect(url, ping_interval=None, max_queue=None, open_timeout=60)
            async with ws:
                hello = json.loads(await ws.recv())
                result.hello = hello.get("type") == "hello"
                if spec.token:
                    await ws.send(json.dumps({"op": "auth", "token": spec.token}))
                await ws.send(json.dumps({"op": "subscribe", "channels": list(spec.channels)}))
                async for raw in ws:
                    message = json.loads(raw)
                    if measuring[0]:
                        counted[0] += 1
                    if message.get("type") == "ping":
                        await ws.send('{"op":"pong"}')
                    else:
                        note(message, spec, result, ready)
            result.closed = f"closed by the server: {ws.close_code} {ws.close_reason}"
        except (OSError, WebSocketException, ValueError, KeyError) as exc:
            result.closed = f"{type(exc).__name__}: {exc}"
        finally:
            ready.set()

    started = time.monotonic()
    tasks = [
        asyncio.create_task(one_socket(spec, result, ready))
        for spec, result, ready in zip(specs, results, opened, strict=True)
    ]
    await asyncio.gather(*(event.wait() for event in opened))
    open_seconds = time.monotonic() - started
    out.put(("opened", index, sum(r.subscribed for r in results)))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, measure.wait)
    measuring[0] = True
    measure_started = time.monotonic()
    await loop.run_in_executor(None, stop.wait)
    measured = time.monotonic() - measure_started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:  # cancelled here, not closed by the server
        if result.closed is None or result.closed.startswith("CancelledError"):
            result.closed = None
    out.put(("done", index, ClientReport(results, latencies, counted[0], measured, open_seconds)))


# --- the feed-like tick driver (a process with Django set up) --------------------------


def feed_main(symbols: list[str], mids: list[str], rate: float, seconds: float) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base")
    django.setup()
    from pricing.services.prices import price_tick_ingest

    started, tick = time.monotonic(), 0
    while tick < rate * seconds:
        delay = started + tick / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        index, turn = tick % len(symbols), tick // len(symbols)
        mid = Decimal(mids[index]) * (1 + Decimal((turn % 20) - 10) / 10_000)  # a new price each time
        half_spread = (mid / 20_000).quantize(Decimal("0.00000001"))
        price_tick_ingest(
            symbol=symbols[index],
            bid=(mid - half_spread).quantize(Decimal("0.00000001")),
            ask=(mid + half_spread).quantize(Decimal("0.00000001")),
            provider="paper",
            ts=datetime.now(UTC),
        )
        tick += 1
    print("FEED " + json.dumps({"ticks": tick}))


# --- the run ----------------------------------------------------------------------------


def marked(output: str, marker: str) -> Any:
    """The JSON after ``marker`` on the last line that starts with it (log lines may surround it)."""
    line = next(line for line in reversed(output.splitlines()) if line.startswith(marker))
    return json.loads(line.removeprefix(marker))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def listening_pid(port: int) -> int | None:
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    return None


def place_orders(
    base: str, token: str, *, count: int, seconds: float, sent: dict[str, float], failures: list[str]
) -> None:
    """``count`` market orders spread over ``seconds``; records when each was sent, by order id."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for n in range(count):
            time.sleep(seconds / (count + 1))
            started = time.time()
            response = client.post(
                "/api/v1/orders", json={**ORDER, "client_order_id": f"bench-ws-{started}-{n}"}
            )
            if response.status_code >= 300:
                failures.append(f"{response.status_code}: {response.text[:200]}")
            else:
                sent[str(response.json()["id"])] = started


@dataclass
class Server:
    url: str  # ws://host:port/ws
    http: str  # http://host:port
    env: dict[str, str]
    pids: list[int]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    redis: EmbeddedRedis | None = None

    def stop(self) -> None:
        processes_stop(self.processes)
        if self.redis is not None:
            self.redis.stop()


def server_start(args: argparse.Namespace) -> Server:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "marqetfi.settings.base"),
    }
    env.setdefault("DEMO_TRADER_EMAIL", TRADER_EMAIL)
    env.setdefault("DEMO_TRADER_PASSWORD", TRADER_PASSWORD)
    if args.url:
        parts = urlsplit(args.url)
        http = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
        pid = args.server_pid or listening_pid(parts.port or 80)
        return Server(args.url, http, env, [pid] if pid else [])
    env["DEBUG"] = "false"
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench-websocket.sqlite3'}")
    env["THROTTLE_ANON"] = env["THROTTLE_USER"] = env["THROTTLE_AUTH"] = env["THROTTLE_WRITE"] = (
        "100000000/min"
    )
    env["LOG_LEVEL"] = "WARNING"
    database = env["DATABASE_URL"]
    if database.startswith("sqlite:///"):
        Path(database.removeprefix("sqlite:///")).unlink(missing_ok=True)
    server = Server("", "", env, [])
    if not env.get("REDIS_URL"):
        server.redis = EmbeddedRedis()
        env["REDIS_URL"] = server.redis.start()
    try:
        python = sys.executable
        run([python, "manage.py", "migrate", "--noinput"], env)
        run([python, "manage.py", "seed_demo"], env)
        run([python, "manage.py", "pricefeed", "--once"], env)
        # One listening socket shared by every daphne process (``--fd``): the kernel hands
        # each new connection to whichever process accepts first.
        listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        port = listener.getsockname()[1]
        for _ in range(args.server_procs):
            server.processes.append(
                subprocess.Popen(
                    [python, "-m", "daphne", "--fd", str(listener.fileno()), "marqetfi.asgi:application"],
                    cwd=BASE_DIR,
                    env=env,
                    pass_fds=(listener.fileno(),),
                    stdout=None if args.server_log else subprocess.DEVNULL,
                    stderr=None if args.server_log else subprocess.DEVNULL,
                )
            )
        listener.close()
        server.url, server.http = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}"
        server.pids = [process.pid for process in server.processes]
        wait_http(f"{server.http}/api/v1/health")
    except BaseException:
        server.stop()
        raise
    return server


def socket_specs(args: argparse.Namespace, user_tokens: list[str], trader_token: str) -> list[SocketSpec]:
    specs = []
    for n in range(args.sockets):
        symbols = [args.symbols[(n + k) % len(args.symbols)] for k in range(args.symbols_per_socket)]
        channels = tuple(f"prices:{s}" for s in symbols)
        if n % 2 == 1:
            trader = n == 1
            token = trader_token if trader else user_tokens[n // 2]
            specs.append(SocketSpec(token, (*channels, "orders", "positions"), trader))
        else:
            specs.append(SocketSpec(None, channels))
    return specs


def checks(
    specs: list[SocketSpec],
    results: list[SocketResult],
    orders_sent: dict[str, float],
    order_failures: list[str],
) -> list[str]:
    """What went wrong; empty when the run is sound."""
    problems: list[str] = []

    def count(what: str, bad: list[int]) -> None:
        if bad:
            problems.append(f"{len(bad)} of {len(specs)} sockets {what} (first: socket {bad[0]})")

    count("got no hello", [i for i, r in enumerate(results) if not r.hello])
    count("got no `subscribed` naming their channels", [i for i, r in enumerate(results) if not r.subscribed])
    count("got an error message", [i for i, r in enumerate(results) if r.errors])
    count("were closed or failed", [i for i, r in enumerate(results) if r.closed])
    count(
        "missed every update of a subscribed symbol",
        [
            i
            for i, (s, r) in enumerate(zip(specs, results, strict=True))
            if {c for c in s.channels if c.startswith("prices:")} - r.symbols_seen
        ],
    )
    count(
        "of other users saw a user event",
        [i for i, (s, r) in enumerate(zip(specs, results, strict=True)) if not s.trader and r.user_events],
    )
    trader = next(r for s, r in zip(specs, results, strict=True) if s.trader)
    if order_failures:
        problems.append(f"{len(order_failures)} orders failed: {order_failures[0]}")
    missing = set(orders_sent) - set(trader.order_events)
    if missing:
        problems.append(
            f"{len(missing)} of {len(orders_sent)} orders never arrived as order_update on the trader's socket"
        )
    if orders_sent and not trader.user_events.get("position_update"):
        problems.append("the trader's socket saw no position_update")
    sample = next((r for r in results if r.errors or r.closed), None)
    if sample is not None:
        problems.append(f"example: errors {sample.errors[:3]}, close: {sample.closed}")
    return problems


def machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?"
    )
    return (
        f"{platform.node()}, nproc {os.cpu_count()}, {model}, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="ws://host:port/ws of a running server (default: start one here)")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for its memory and CPU")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument(
        "--server-procs", type=int, default=1, help="daphne processes sharing the listening socket"
    )
    parser.add_argument(
        "--client-procs", type=int, default=2, help="client processes the sockets are spread over"
    )
    parser.add_argument("--symbols", default="BTCUSD,ETHUSD,SOLUSD,EURUSD")
    parser.add_argument("--symbols-per-socket", type=int, default=2)
    parser.add_argument("--rate", type=float, default=4.0, help="price ticks per second, over all symbols")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long ticks and orders run")
    parser.add_argument(
        "--orders", type=int, default=20, help="market orders placed over REST during the run"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=100, help="handshakes in flight per client process"
    )
    parser.add_argument("--server-log", action="store_true", help="show daphne's output and log")
    parser.add_argument("--write", action="store_true", help="append the figures to BENCHMARKS.md")
    parser.add_argument(
        "--feed", nargs=4, metavar=("SYMBOLS", "MIDS", "RATE", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.feed:
        symbols, mids, rate, seconds = args.feed
        feed_main(symbols.split(","), mids.split(","), float(rate), float(seconds))
        return 0
    args.symbols = [s for s in args.symbols.split(",") if s]
    args.symbols_per_socket = min(args.symbols_per_socket, len(args.symbols))
    if args.sockets < 2:
        sys.exit("--sockets must be at least 2 (one anonymous, one signed-in)")

    started_at = datetime.now(UTC)
    server = server_start(args)
    try:
        report = measure(args, server)
    finally:
        server.stop()
    print(report["text"])
    if report["problems"]:
        print("\nChecks failed:\n- " + "\n- ".join(report["problems"]), file=sys.stderr)
        return 1
    if args.write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write(
                f"\n## WebSocket streams — {started_at:%Y-%m-%d %H:%M} UTC\n\n" + report["text"] + "\n"
            )
    return 0


def server_cpu_seconds(processes: list[psutil.Process]) -> float:
    """User plus system CPU seconds of the server's processes so far."""
    return sum(times.user + times.system for times in (process.cpu_times() for process in processes))


def measure(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    python = sys.executable
    print(f"making {args.sockets // 2} users and tokens ...", flush=True)
    output = run(
        [python, "manage.py", "shell", "-c", MAKE_TOKENS.format(count=args.sockets // 2)], server.env
    )
    user_tokens = marked(output, "TOKENS ")
    login = httpx.post(
        f"{server.http}/api/v1/auth/login",
        json={"email": server.env["DEMO_TRADER_EMAIL"], "password": server.env["DEMO_TRADER_PASSWORD"]},
        timeout=30,
    )
    login.raise_for_status()
    trader_token = login.json()["access"]
    prices = httpx.get(
        f"{server.http}/api/v1/prices", params={"symbols": ",".join(args.symbols)}, timeout=30
    ).json()
    mids = {p["symbol"]: p["mid"] for p in prices["prices"]}
    if unknown := [s for s in args.symbols if s not in mids]:
        sys.exit(f"no price for {unknown}: {prices.get('errors')}")

    server_processes = [psutil.Process(pid) for pid in server.pids]
    rss_before = sum(process.memory_info().rss for process in server_processes)
    specs = socket_specs(args, user_tokens, trader_token)
    context = multiprocessing.get_context("spawn")
    out: Queue[Any] = context.Queue()
    measuring, stopping = context.Event(), context.Event()
    chunks = [chunk for chunk in (specs[i :: args.client_procs] for i in range(args.client_procs)) if chunk]
    clients = [
        context.Process(
            target=client_main,
            args=(ClientJob(index, server.url, chunk, args.connect_concurrency), (measuring, stopping), out),
        )
        for index, chunk in enumerate(chunks)
    ]
    for process in clients:
        process.start()
    print(f"opening {args.sockets} sockets over {len(clients)} processes ...", flush=True)
    subscribed = sum(out.get(timeout=300)[2] for _ in clients)
    time.sleep(2.0)  # let the server settle (allocations, snapshots sent)
    rss_after = sum(process.memory_info().rss for process in server_processes)
    cpu_before = server_cpu_seconds(server_processes)

    print(
        f"{subscribed} sockets subscribed; {args.rate:g} ticks/s and {args.orders} orders for {args.seconds:g} s ...",
        flush=True,
    )
    feed = subprocess.Popen(
        [
            python,
            __file__,
            "--feed",
            ",".join(args.symbols),
            ",".join(mids[s] for s in args.symbols),
            str(args.rate),
            str(args.seconds),
        ],
        cwd=BASE_DIR,
        env=server.env,
        stdout=subprocess.PIPE,
    )
    measuring.set()
    orders_sent: dict[str, float] = {}
    order_failures: list[str] = []
    orders = threading.Thread(
        target=place_orders,
        args=(server.http, trader_token),
        kwargs={
            "count": args.orders,
            "seconds": args.seconds,
            "sent": orders_sent,
            "failures": order_failures,
        },
    )
    orders.start()
    feed_output, _ = feed.communicate(timeout=args.seconds + 120)
    orders.join()
    ticks = marked(feed_output.decode(), "FEED ")["ticks"] if feed.returncode == 0 else 0
    time.sleep(1.0)  # the last ticks and events in flight
    cpu_after = server_cpu_seconds(server_processes)
    stopping.set()
    done = sorted((out.get(timeout=120) for _ in clients), key=lambda item: item[1])  # by process index
    reports: list[ClientReport] = [report for _, _, report in done]
    for process in clients:
        process.join(30)

    specs_in_order = [spec for chunk in chunks for spec in chunk]
    results = [result for r in reports for result in r.sockets]
    latency = percentiles([ms for r in reports for ms in r.latencies_ms])
    seconds = max(r.measured_seconds for r in reports)
    messages = sum(r.messages for r in reports)
    trader = next(r for s, r in zip(specs_in_order, results, strict=True) if s.trader)
    order_latency = percentiles(
        [(trader.order_events[i] - t) * 1000 for i, t in orders_sent.items() if i in trader.order_events]
    )
    problems = checks(specs_in_order, results, orders_sent, order_failures)
    if feed.returncode != 0:
        problems.append(f"the tick driver exited with {feed.returncode}")

    per_socket_kib = (rss_after - rss_before) / args.sockets / 1024 if server_processes else float("nan")
    cpu_seconds = cpu_after - cpu_before if server_processes else float("nan")
    text = "\n".join(
        [
            f"Machine: {machine()}. `bench/websocket.py --sockets {args.sockets} --client-procs {args.client_procs} "
            f"--rate {args.rate:g} --seconds {args.seconds:g}`: {'a running server ' + server.url if args.url else f'{args.server_procs} daphne process(es) on one listening socket, started by the script'}, "
            f"clients on the same machine; {args.sockets // 2} sockets signed in as distinct users (orders, positions), "
            f"each socket on {args.symbols_per_socket} of {', '.join(args.symbols)}; {ticks} ticks through "
            f"`price_tick_ingest` ({ticks / args.seconds:.1f}/s), {len(orders_sent)} market orders over REST.",
            "",
            "| figure | value |",
            "| --- | ---: |",
            f"| sockets open and subscribed | {subscribed} of {args.sockets} |",
            f"| tick-to-client latency p50 / p95 / p99 / max, ms | {latency['p50']:.1f} / {latency['p95']:.1f} / {latency['p99']:.1f} / {latency['max']:.1f} |",
            f"| price updates measured | {latency['n']:.0f} |",
            f"| messages received per second, all sockets | {messages / seconds:.0f} |",
            f"| order sent to `order_update` on the trader's socket p50 / p99, ms | {order_latency['p50']:.1f} / {order_latency['p99']:.1f} |",
            f"| server RSS before / after opening the sockets, MiB | {rss_before / 2**20:.1f} / {rss_after / 2**20:.1f} |",
            f"| server memory per socket, KiB | {per_socket_kib:.1f} |",
            f"| server CPU during the run, s per s | {cpu_seconds / seconds:.2f} |",
            "",
        ]
    )
    return {"text": text, "problems": problems}


if __name__ == "__main__":
    sys.exit(main())
