"""The web tier: one listening socket, several daphne processes accepting on it.

``python -m marqetfi.webserver --port 8000 [--bind 127.0.0.1] [--processes N] [-- daphne options]``

One daphne process runs one event loop, so it uses one core. To use every core of a web
machine, this supervisor binds the port once and starts N ``daphne --fd`` children that
share the socket; the kernel hands each new connection to whichever child accepts first,
so a busy child takes fewer. A WebSocket stays with the child that accepted it; what it
streams comes through Redis (the stream channels), so it does not matter which child served
the request that caused an event. N is ``--processes``, else ``WEB_PROCESSES``, else the
cores this process may run on. Options after ``--`` go to every daphne as they are.

Supervision: a child that exits is started again after a backoff (0.5 s, doubling while
children of that slot keep exiting within ``QUICK_EXIT_SECONDS`` of their start). After
``MAX_QUICK_EXITS`` such exits in a row (a broken release or setting, not a crash) it stops
everything and exits 1, so that honcho or systemd shows the failure instead of a loop.
SIGTERM, SIGINT or SIGHUP: SIGTERM to every child, ``STOP_TIMEOUT`` seconds for them to
finish their connections, SIGKILL for the rest, exit 0.

The children run in process groups of their own: a signal to this process's group (honcho
signals the group it started, a terminal sends Ctrl-C to its foreground group) reaches them
only through this process, once. If this process dies without stopping them (SIGKILL), the
kernel sends each of them SIGTERM.

daphne's ``--fd`` only adopts IPv4 sockets (its ``fd:`` endpoint takes no working address
family), hence an IPv4 ``--bind``; put a proxy in front for IPv6.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

from marqetfi.core.logging import JsonFormatter
from marqetfi.embedded import die_with_parent

APPLICATION = "marqetfi.asgi:application"
# Connections waiting to be accepted, across all children (Linux caps it at net.core.somaxconn).
BACKLOG = 4096
STOP_TIMEOUT = 10.0
QUICK_EXIT_SECONDS = 10.0
MAX_QUICK_EXITS = 5
FIRST_BACKOFF_SECONDS = 0.5

logger = logging.getLogger("marqetfi.webserver")


def web_processes_default() -> int:
    """``WEB_PROCESSES`` if set, else the number of cores this process may run on."""
    configured = os.environ.get("WEB_PROCESSES", "").strip()
    if configured:
        count = int(configured)
        if count < 1:
            raise ValueError(f"must be at least 1, not {count}")
        return count
    return len(os.sched_getaffinity(0))


def listener_bind(host: str, port: int) -> socket.socket:
    """The shared listening socket (``SO_REUSEADDR``: a restart does not wait for TIME_WAIT)."""
    return socket.create_server((host, port), family=socket.AF_INET, backlog=BACKLOG)


@dataclass
class _Slot:
    """One of the N places a daphne child runs in, across its restarts."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None


class WebTier:
    """Starts and supervises the daphne children sharing ``listener``; see the module doc."""

    def __init__(self, listener: socket.socket, processes: int, daphne_args: list[str]) -> None:
        self.listener = listener
        self.daphne_args = daphne_args
        self.slots = [_Slot(number) for number in range(1, processes + 1)]
        self.stop_signal: int | None = None

    def run(self) -> int:
        """Supervise until a stop signal (returns 0) or a slot that keeps failing (returns 1)."""
        wakeup_read, wakeup_write = socket.socketpair()
        wakeup_read.setblocking(False)
        wakeup_write.setblocking(False)
        signal.set_wakeup_fd(wakeup_write.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop_requested)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # only to wake the select below
        failed = False
        try:
            for slot in self.slots:
                self._start(slot)
            while self.stop_signal is None and not failed:
                select.select([wakeup_read], [], [], self._wait_seconds())
                with contextlib.suppress(BlockingIOError):
                    wakeup_read.recv(4096)
                failed = self._supervise()
            if self.stop_signal is not None:
                logger.info("%s received: stopping the web processes", signal.Signals(self.stop_signal).name)
        finally:
            self._stop_all()
            signal.set_wakeup_fd(-1)
            wakeup_read.close()
            wakeup_write.close()
        return 1 if failed else 0

    def _stop_requested(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:  # logged by the loop: a handler should not take logging's locks
            self.stop_signal = signum

    def _start(self, slot: _Slot) -> None:
        fd = self.listener.fileno()
        slot.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-m", "daphne", "--fd", str(fd), *self.daphne_args, APPLICATION],
            pass_fds=(fd,),
            process_group=0,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - this process runs no other thread
        )
        slot.started, slot.restart_at = time.monotonic(), None
        logger.info("web process %d started (pid %d)", slot.number, slot.process.pid)

    def _wait_seconds(self) -> float:
        """Until the next restart is due; a SIGCHLD or a stop signal wakes the wait earlier."""
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else 5.0

    def _supervise(self) -> bool:
        """Note the children that exited, start those whose backoff is over; true to give up."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                returncode, lived = slot.process.returncode, now - slot.started
                slot.process = None
                slot.quick_exits = slot.quick_exits + 1 if lived < QUICK_EXIT_SECONDS else 0
                if slot.quick_exits >= MAX_QUICK_EXITS:
                    logger.error(
                        "web process %d exited (%s) %d times in a row within %.0f s of its start: giving up",
                        slot.number, _exit_text(returncode), slot.quick_exits, QUICK_EXIT_SECONDS,
                    )  # fmt: skip
                    return True
                backoff = FIRST_BACKOFF_SECONDS * 2 ** max(0, slot.quick_exits - 1)
                slot.restart_at = now + backoff
                logger.warning(
                    "web process %d exited (%s) after %.1f s; starting another in %.1f s",
                    slot.number, _exit_text(returncode), lived, backoff,
                )  # fmt: skip
            due = slot.restart_at is not None and slot.restart_at <= now
            if slot.process is None and due and self.stop_signal is None:
                self._start(slot)
        return False

    def _stop_all(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning(
                    "web process pid %d still running after %.0f s: killing it", process.pid, STOP_TIMEOUT
                )
                process.kill()
                process.wait()
        for slot in self.slots:
            slot.process = None


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"status {returncode}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--bind", default="127.0.0.1", help="IPv4 address to listen on (0.0.0.0: all)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="daphne processes (default: WEB_PROCESSES, else the cores)",
    )
    parser.add_argument("daphne_args", nargs="*", help="after --: options for every daphne")
    args = parser.parse_args(argv)
    try:
        processes = args.processes if args.processes is not None else web_processes_default()
    except ValueError as exc:
        parser.error(f"WEB_PROCESSES: {exc}")
    if processes < 1:
        parser.error("--processes must be at least 1")

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    try:
        listener = listener_bind(args.bind, args.port)
    except OSError as exc:
        parser.exit(1, f"cannot listen on {args.bind}:{args.port}: {exc}\n")
    with listener:
        logger.info(
            "web tier listening on %s:%d with %d daphne process(es)",
            args.bind, listener.getsockname()[1], processes,
        )  # fmt: skip
        return WebTier(listener, processes, args.daphne_args).run()


if __name__ == "__main__":
    sys.exit(main())
