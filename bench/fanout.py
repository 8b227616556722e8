"""Fan-out cost of one price tick to N receivers, three ways (run by hand: ``.venv/bin/python bench/fanout.py``).

What a web process pays to hand one tick from the feed to N open sockets, through this
machine's Redis (``REDIS_URL``, default ``redis://127.0.0.1:6379/9``):

- ``layer``: channels_redis ``RedisChannelLayer.group_send`` to a group of N channels, each
  receiver awaiting its own ``receive`` (what the project's layer does today);
- ``pubsub-layer``: channels_redis ``RedisPubSubChannelLayer.group_send``, N receivers;
- ``hub``: one redis.asyncio pub/sub subscription per process whose reader hands each message
  to N asyncio queues in memory (the shape of a per-process stream hub).

The N receivers are spread over ``--receiver-procs`` processes (default 2, like two web
processes), each with its own layer or subscription; the publisher is this process, like the
feed. Ticks go out at a fixed rate; each carries its publish time on the monotonic clock
(system-wide on Linux, so comparable between processes). Reported per mode and N:
publish-to-last-receiver latency p50 / p95 / p99 / max over the ticks, ticks lost, the
publisher's time in the send call, receiver CPU per tick (all receiver processes) and Redis
commands per tick sent by the publisher and by the receivers (counted in our own processes,
since other clients may share the Redis; a Lua script counts as one command, though the
layer's group_send script runs a ZCOUNT, ZADD and EXPIRE inside it per process key).

Prints a table and appends it, with the machine and date, to BENCHMARKS.md (``--no-write``
to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import redis as redis_sync
import redis.asyncio as aioredis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

BASE_DIR = Path(__file__).resolve().parents[1]
MODES = ("layer", "pubsub-layer", "hub")
PRICE = {"bid": "64123.4", "ask": "64123.6", "mid": "64123.5", "ts": "2026-11-26T00:00:00.000Z"}
STOP = -1


# --- counting Redis commands in our own processes -----------------------------------------

_sent = [0]


def commands_count() -> None:
    """Count every command our redis.asyncio clients send (a pipeline counts each command in it).

    Counted here rather than from the server's INFO, which other clients of a shared Redis
    add to. Commands a Lua script runs inside Redis are not counted: the script call is one.
    """
    plain, pipelined = aioredis.Redis.execute_command, aioredis.client.Pipeline.execute

    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        _sent[0] += 1
        return await plain(self, *args, **options)

    async def execute(self: Any, raise_on_error: bool = True) -> Any:
        _sent[0] += len(self.command_stack)
        return await pipelined(self, raise_on_error)

    aioredis.Redis.execute_command = execute_command  # type: ignore[method-assign]
    aioredis.client.Pipeline.execute = execute  # type: ignore[method-assign]


# --- receivers (one process each) -------------------------------------------------------


@dataclass(frozen=True)
class ReceiverJob:
    mode: str
    redis_url: str
    prefix: str
    group: str
    count: int
    ticks: int


def receiver_main(job: ReceiverJob, out: Queue[Any]) -> None:
    commands_count()
    asyncio.run(receive_all(job, out))


async def receive_all(job: ReceiverJob, out: Queue[Any]) -> None:
    mode, count, ticks = job.mode, job.count, job.ticks
    got = [0] * ticks
    errors: list[str] = []
    last = [0.0] * ticks

    def note(tick: int) -> None:
        now = time.monotonic()
        got[tick] += 1
        last[tick] = max(last[tick], now)

    tasks: list[asyncio.Task[None]] = []
    reader: asyncio.Task[None] | None = None
    if mode in ("layer", "pubsub-layer"):
        layer_class = RedisChannelLayer if mode == "layer" else RedisPubSubChannelLayer
        layer = layer_class(hosts=[job.redis_url], prefix=job.prefix)

        async def layer_receiver(channel: str) -> None:
            while True:
                try:
                    tick = (await layer.receive(channel))["i"]
                except Exception as exc:  # noqa: BLE001 - counted and reported: the layer's own failure
                    errors.append(repr(exc))
                    continue
                if tick == STOP:
                    return
                note(tick)

        for _ in range(count):
            channel = await layer.new_channel()
            await layer.group_add(job.group, channel)
            tasks.append(asyncio.create_task(layer_receiver(channel)))
    else:
        client = aioredis.Redis.from_url(job.redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(job.group)
        queues: list[asyncio.Queue[dict[str, Any]]] = [asyncio.Queue() for _ in range(count)]

        async def hub_reader() -> None:
            async for item in pubsub.listen():
                if item["type"] == "message":
                    message = json.loads(item["data"])  # decoded once per process, shared by all
                    for queue in queues:
                        queue.put_nowait(message)

        async def hub_receiver(queue: asyncio.Queue[dict[str, Any]]) -> None:
            while (tick := (await queue.get())["i"]) != STOP:
                note(tick)

        reader = asyncio.create_task(hub_reader())
        tasks = [asyncio.create_task(hub_receiver(q)) for q in queues]
    await asyncio.sleep(0.5)  # subscriptions settled
    cpu_before, sent_before = time.process_time(), _sent[0]
    out.put(("ready", None))
    _, pending = await asyncio.wait(tasks, timeout=max(30.0, ticks / 5))
    cpu = time.process_time() - cpu_before
    for task in pending:
        task.cancel()
    if reader is not None:
        reader.cancel()
    out.put(
        (
            "done",
            {
                "got": got,
                "last": last,
                "cpu": cpu,
                "unfinished": len(pending),
                "errors": errors,
                "commands": _sent[0] - sent_before,
            },
        )
    )


# --- publisher (this process) -------------------------------------------------------------


class Publisher:
    def __init__(self, mode: str, redis_url: str, prefix: str, group: str) -> None:
        self.mode, self.group = mode, group
        self.layer: Any = None
        self.client: aioredis.Redis | None = None
        if mode == "layer":
            self.layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
        elif mode == "pubsub-layer":
            self.layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)
        else:
            self.client = aioredis.Redis.from_url(redis_url)

    async def send(self, tick: int, t0: float) -> None:
        message = {"type": "price.update", "channel": "prices:BTCUSD", "data": PRICE, "i": tick, "t0": t0}
        if self.layer is not None:
            await self.layer.group_send(self.group, message)
        else:
            assert self.client is not None
            await self.client.publish(self.group, json.dumps(message, separators=(",", ":")))

    async def close(self) -> None:
        if self.layer is not None:
            await self.layer.flush()
        if self.client is not None:
            await self.client.aclose()


def quantile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


@dataclass
class Case:
    mode: str
    receivers: int
    ticks: int
    p50: float
    p95: float
    p99: float
    worst: float
    lost: int
    send_ms: float
    receiver_cpu_ms: float
    publisher_commands: float
    receiver_commands: float
    receiver_errors: str


async def run_case(mode: str, receivers: int, args: argparse.Namespace) -> Case:
    prefix = f"bench-fanout-{uuid.uuid4().hex[:8]}"
    group = f"prices.BTCUSD.{prefix}" if mode == "hub" else "prices.BTCUSD"
    context = multiprocessing.get_context("spawn")
    out: Queue[Any] = context.Queue()
    shares = [
        receivers // args.receiver_procs + (1 if i < receivers % args.receiver_procs else 0)
        for i in range(args.receiver_procs)
    ]
    procs = [
        context.Process(
            target=receiver_main,
            args=(ReceiverJob(mode, args.redis_url, prefix, group, share, args.ticks), out),
        )
        for share in shares
        if share
    ]
    for proc in procs:
        proc.start()
    loop = asyncio.get_running_loop()
    for _ in procs:
        kind, _payload = await loop.run_in_executor(None, out.get, True, 120)
        assert kind == "ready"
    publisher = Publisher(mode, args.redis_url, prefix, group)
    published_before = _sent[0]
    sent_at: list[float] = []
    send_ms: list[float] = []
    start = time.monotonic()
    for tick in range(args.ticks):
        delay = start + tick / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.monotonic()
        await publisher.send(tick, t0)
        send_ms.append((time.monotonic() - t0) * 1000)
        sent_at.append(t0)
    published = _sent[0] - published_before
    await publisher.send(STOP, time.monotonic())
    results = []
    for _ in procs:
        kind, payload = await loop.run_in_executor(None, out.get, True, max(60.0, args.ticks / 5 + 30))
        assert kind == "done"
        results.append(payload)
    for proc in procs:
        proc.join(10)
    await publisher.close()

    latencies, lost = [], 0
    for tick, t0 in enumerate(sent_at):
        got = sum(r["got"][tick] for r in results)
        if got < receivers:
            lost += 1
            continue
        latencies.append((max(r["last"][tick] for r in results) - t0) * 1000)
    latencies.sort()
    return Case(
        mode=mode,
        receivers=receivers,
        ticks=args.ticks,
        p50=quantile(latencies, 0.50),
        p95=quantile(latencies, 0.95),
        p99=quantile(latencies, 0.99),
        worst=latencies[-1] if latencies else float("nan"),
        lost=lost,
        send_ms=quantile(sorted(send_ms), 0.50),
        receiver_cpu_ms=sum(r["cpu"] for r in results) * 1000 / args.ticks,
        publisher_commands=published / args.ticks,
        receiver_commands=sum(r["commands"] for r in results) / args.ticks,
        receiver_errors=error_summary([e for r in results for e in r["errors"]]),
    )


def error_summary(errors: list[str]) -> str:
    if not errors:
        return "0"
    kinds = sorted(set(errors))
    return f"{len(errors)} ({'; '.join(kinds[:2])})"


def machine() -> str:
    model = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    name = next(
        (line.split(":", 1)[1].strip() for line in model.splitlines() if line.startswith("Model name")), "?"
    )
    memory_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return (
        f"{platform.node()}, nproc {os.cpu_count()}, {name}, {memory_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.platform()}, Python {platform.python_version()}"
    )


async def main_async(args: argparse.Namespace) -> list[Case]:
    args.redis_version = redis_sync.Redis.from_url(args.redis_url).info("server")["redis_version"]
    commands_count()
    cases = []
    for receivers in args.sizes:
        for mode in args.modes:
            case = await run_case(mode, receivers, args)
            print(
                f"{mode:>12} N={receivers:<5} p50 {case.p50:7.2f} ms  p99 {case.p99:7.2f} ms  lost {case.lost}  "
                f"{case.publisher_commands + case.receiver_commands:.1f} cmds/tick",
                flush=True,
            )
            cases.append(case)
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000", help="receiver counts, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help=f"any of {', '.join(MODES)}")
    parser.add_argument("--ticks", type=int, default=300, help="ticks per run")
    parser.add_argument("--rate", type=float, default=20.0, help="ticks per second")
    parser.add_argument(
        "--receiver-procs", type=int, default=2, help="processes the receivers are spread over"
    )
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()
    args.sizes = [int(n) for n in args.sizes.split(",")]
    args.modes = [m for m in args.modes.split(",") if m]
    if unknown := set(args.modes) - set(MODES):
        sys.exit(f"unknown modes: {', '.join(sorted(unknown))}")
    args.redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9")

    started = datetime.now(UTC)
    cases = asyncio.run(main_async(args))
    lines = [
        f"## WebSocket fan-out, one tick to N receivers — {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine()}. Redis {args.redis_version} on loopback ({args.redis_url}), "
        "shared with other clients (the command counts are our processes' own). `bench/fanout.py`: "
        f"{args.ticks} ticks at {args.rate:g}/s per run, receivers spread over {args.receiver_procs} "
        "processes, publisher in a process of its own.",
        "",
        "| mode | N | p50 ms | p95 ms | p99 ms | max ms | ticks lost | send call ms (p50) "
        "| receiver CPU ms/tick | Redis commands/tick: publisher + receivers | receive errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        lines.append(
            f"| {c.mode} | {c.receivers} | {c.p50:.2f} | {c.p95:.2f} | {c.p99:.2f} | {c.worst:.2f} | {c.lost} "
            f"| {c.send_ms:.2f} | {c.receiver_cpu_ms:.2f} | {c.publisher_commands:.1f} + {c.receiver_commands:.1f} "
            f"| {c.receiver_errors} |"
        )
    lines.append("")
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        with (BASE_DIR / "BENCHMARKS.md").open("a") as handle:
            handle.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
