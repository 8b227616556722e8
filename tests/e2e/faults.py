"""Faults the e2e fault tests inject: a private Redis that can be stopped and started again on
its port, and a TCP proxy in front of PostgreSQL that can drop every connection and refuse new
ones (what a database restart looks like from a client), then accept again.

Neither touches the machine's shared PostgreSQL or Redis: the processes under test are pointed
at these instead. A private PostgreSQL cluster would need ``initdb`` and a few seconds of start-up
per test; the proxy restarts instantly and reaches the same client code paths (refused
connections, connections dropped mid-query).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from marqetfi.embedded import EmbeddedRedis
from tests.e2e.conftest import CeleryWorker, start_celery_worker


class RestartableRedis(EmbeddedRedis):
    """The embedded Redis, stopped and started again on the same port (no persistence: what
    it held is gone after a restart, the worst case for us)."""

    def down(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def up(self) -> None:
        self.start()


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut()`` closes every connection and the
    listening socket (new connections are refused); ``restore()`` listens again on the port."""

    target: tuple[str, int]
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _thread: threading.Thread | None = None

    def start(self) -> TcpProxy:
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="tcp-proxy")
        self._thread.start()
        self.restore()
        return self

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def restore(self) -> None:
        self._run(self._listen())

    def cut(self) -> None:
        self._run(self._cut())

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accepted, "127.0.0.1", self.port, reuse_address=True, family=socket.AF_INET
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, as when the server process goes away
        self._writers.clear()

    async def _accepted(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


def start_worker_on_own_broker(env: dict[str, str], log_dir: Path) -> tuple[CeleryWorker, Celery]:
    """A worker on the broker of ``env["REDIS_URL"]`` (not the session's), ready once it answers
    a ping there; also the Celery app the test sends tasks and pings with."""
    # Not the current app: the test process's own tasks keep going to the session's broker.
    control = Celery("fault-test", broker=env["REDIS_URL"], set_as_current=False)
    control.conf.broker_connection_retry_on_startup = True
    return start_celery_worker(env, log_dir, ping_app=control), control


@dataclass
class Timed:
    """Wall-clock seconds of each call made through it; the worst one is what a client waited."""

    seconds: list[float] = field(default_factory=list)

    def __call__(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds.append(time.monotonic() - started)

    @property
    def worst(self) -> float:
        return max(self.seconds, default=0.0)
