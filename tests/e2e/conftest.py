"""Real processes for the end-to-end tests: daphne and a Celery worker on free ports.

They run against the database the test session created (the test SQLite file or the
``test_...`` PostgreSQL database) and the Redis of the session, so a row a test commits
(``django_db(transaction=True)``) is seen by the server and the worker, and the other way
round. Every process is tied to this one: stopped at fixture teardown, and sent SIGTERM by
the kernel if pytest dies without cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import quote

import httpx
import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from marqetfi.embedded import die_with_parent
from pricing.services.pairs import pairs_sync
from providers.models import RoutingRule
from providers.services.routing import routing_rule_create
from tests.accounts.factories import UserFactory
from tests.log_scan import log_scan

BASE_DIR = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _prepare_child() -> None:  # runs in the child between fork and exec: no imports, no locks
    # A shell that starts pytest in the background hands it SIGINT ignored, and children
    # inherit that; servers must see the default so that Ctrl-C (SIGINT) stops them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def _queue_name() -> str:
    """The test queue; under pytest-xdist one per xdist worker, since every xdist worker has its
    own test database but they may share one Redis: a task must reach the worker of its session."""
    xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return f"{queue}-{xdist_worker}" if xdist_worker else queue


def _database_url() -> str:
    """The URL of the database this session's connection uses (the test database)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            pytest.skip("the e2e tests need a file database other processes can open")
        return f"sqlite:///{name}"
    if connection.vendor == "postgresql":
        credentials = quote(db["USER"] or "", safe="")
        if db.get("PASSWORD"):
            credentials += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        at = "@" if credentials else ""
        return f"postgres://{credentials}{at}{host}{port}/{quote(db['NAME'], safe='')}"
    pytest.skip(f"no e2e support for the {connection.vendor} backend")


@dataclass
class ManagedProcess:
    """A subprocess whose stdout and stderr go to a log file, printed when a test fails."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig`` and wait; kill the process group if it does not exit in time."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored signal {sig} for {timeout} s; killing it\n{self.output()}")
                self._kill_group()
        self._kill_group()  # stragglers of this process's own group (a worker's pool children)
        self._log.close()
        return self.popen.returncode

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # the group was created for this process
        if self.popen.returncode is None:
            self.popen.wait(timeout=STOP_TIMEOUT)

    def fail(self, message: str) -> NoReturn:
        pytest.fail(f"{message}\n--- {self.name} output ({self.log_path}) ---\n{self.output()}")


def start_process(
    name: str, command: list[str], env: dict[str, str], log_dir: Path, pass_fds: tuple[int, ...] = ()
) -> ManagedProcess:
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:8]}.log"
    log = log_path.open("wb")
    popen = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        pass_fds=pass_fds,
        start_new_session=True,  # its own process group, so teardown can reach its children
        preexec_fn=_prepare_child,  # noqa: PLW1509 - only signal() and prctl() in the child
    )
    return ManagedProcess(name, popen, log_path, log)


def wait_until(
    process: ManagedProcess, ready: Callable[[], bool], what: str, timeout: float = STARTUP_TIMEOUT
) -> None:
    """Poll ``ready`` until it returns true; fail with the process output on exit or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            process.fail(f"{process.name} exited with {process.popen.returncode} before {what}")
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    process.fail(f"{process.name} was not {what} within {timeout} s")


@dataclass
class DaphneServer:
    process: ManagedProcess
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, **kwargs)


@dataclass
class CeleryWorker:
    process: ManagedProcess
    hostname: str
    queue: str


@pytest.fixture
def market(db: Any) -> None:
    """Every category routed to the paper venue, its pairs listed."""
    for category in ("crypto", "forex", "indices", "commodities"):
        if not RoutingRule.objects.filter(match=RoutingRule.Match.CATEGORY, value=category).exists():
            routing_rule_create(match=RoutingRule.Match.CATEGORY, value=category, venues=["paper"])
    pairs_sync(provider="paper")


@pytest.fixture
def staff(db: Any) -> Any:
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture(scope="session")
def e2e_log_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="marqetfi-e2e-") as path:
        yield Path(path)
        for log_file in sorted(Path(path).glob("*.log")):  # the processes' logs, scanned for secrets
            log_scan.file_check(log_file)


@pytest.fixture(scope="session")
def e2e_env(django_db_setup: None) -> dict[str, str]:
    """The environment of every process: production settings, the session's test services."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marqetfi.settings.base",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_QUEUE": _queue_name(),
        "EVENT_REDISPATCH_AFTER_SECONDS": "0",
        "STREAM_CHANNEL_PREFIX": settings.STREAM_CHANNEL_PREFIX,
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "false",
        # Webhook receivers of the tests listen on loopback, over plain http.
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "WEBHOOK_REQUIRE_HTTPS": "false",
        # Health checks afresh on each call (its cache is tested in tests/core/test_health.py).
        "HEALTH_CACHE_SECONDS": "0",
        "METRICS_TOKEN": settings.METRICS_TOKEN,
    }


def start_daphne(env: dict[str, str], log_dir: Path) -> DaphneServer:
    """Start daphne on a free port and wait until it serves HTTP.

    The listening socket is made here and handed over (``--fd``): the port is known before
    daphne starts and nothing else can take it in between.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = int(listener.getsockname()[1])
        fd = listener.fileno()
        command = [sys.executable, "-m", "daphne", "--fd", str(fd), "marqetfi.asgi:application"]
        process = start_process("daphne", command, env, log_dir, pass_fds=(fd,))

    def serves_http() -> bool:
        # Any status will do: requests wait in the socket's backlog until daphne accepts them.
        httpx.get(f"http://127.0.0.1:{port}/__e2e_ready__", timeout=2.0)
        return True

    try:
        wait_until(process, serves_http, "serving HTTP")
    except BaseException:
        process.stop()
        raise
    return DaphneServer(process, port)


@pytest.fixture(scope="session")
def daphne_server(e2e_env: dict[str, str], e2e_log_dir: Path) -> Iterator[DaphneServer]:
    """One daphne for the session; tests that stop a server start their own."""
    server = start_daphne(e2e_env, e2e_log_dir)
    yield server
    server.process.stop()


@pytest.fixture
def own_daphne(e2e_env: dict[str, str], e2e_log_dir: Path) -> Iterator[DaphneServer]:
    """A daphne for this test alone (it may be stopped); stopped at teardown in any case."""
    server = start_daphne(e2e_env, e2e_log_dir)
    yield server
    server.process.stop()


def start_celery_worker(
    env: dict[str, str],
    log_dir: Path,
    concurrency: int = 1,
    ping_app: Celery | None = None,
    module: str = "celery",
) -> CeleryWorker:
    """Start a real worker consuming the test queue; return once it answers a control ping,
    sent through ``ping_app`` (the project's app by default: the session's broker).
    ``module`` is run with ``python -m``: Celery's own, or a wrapper that readies the process
    first (``tests.e2e.lighter_worker``)."""
    from marqetfi.celery import app

    pinger = ping_app or app
    queue = env["CELERY_QUEUE"]
    hostname = f"e2e-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    command = [
        sys.executable, "-m", module, "-A", "marqetfi", "worker",
        "--loglevel", "INFO",
        "--queues", queue,
        "--hostname", hostname,
        "--concurrency", str(concurrency),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    process = start_process("celery-worker", command, env, log_dir)
    try:
        wait_until(
            process,
            lambda: bool(pinger.control.ping(destination=[hostname], timeout=0.5)),
            "answering control pings",
        )
    except BaseException:
        process.stop()
        raise
    return CeleryWorker(process, hostname, queue)


@pytest.fixture(scope="session")
def celery_worker(e2e_env: dict[str, str], e2e_log_dir: Path) -> Iterator[CeleryWorker]:
    """A real worker consuming the test queue, ready once it answers a control ping."""
    worker = start_celery_worker(e2e_env, e2e_log_dir)
    try:
        yield worker
    finally:
        worker.process.stop()
