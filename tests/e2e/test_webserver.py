"""The web tier (``python -m marqetfi.webserver``, the Procfile's ``web``): two daphne processes
sharing one port, supervised, on the session's database and Redis.

Which process serves a connection is read from the processes themselves (psutil): the one
holding the server side of the client's TCP connection.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import DaphneServer, start_process, wait_until
from tests.e2e.test_streams import Socket, set_price, token, trader

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROCESSES = 2
LISTENING = re.compile(r"web tier listening on 127\.0\.0\.1:(\d+)")


def start_web_tier(env: dict[str, str], log_dir: Path) -> DaphneServer:
    """The tier on a port it picks itself (read from its log), once each daphne serves."""
    command = [sys.executable, "-m", "marqetfi.webserver", "--port", "0", "--processes", str(PROCESSES)]
    process = start_process("webserver", command, env, log_dir)
    try:
        wait_until(process, lambda: LISTENING.search(process.output()) is not None, "listening")
        match = LISTENING.search(process.output())
        assert match is not None
        tier = DaphneServer(process, int(match.group(1)))
        wait_serving_from(tier, {child.pid for child in children(tier)})
    except BaseException:
        process.stop()
        raise
    return tier


@pytest.fixture(scope="module")
def started_tiers() -> Iterator[list[DaphneServer]]:
    started: list[DaphneServer] = []
    yield started
    for tier in started:
        tier.process.stop()


@pytest.fixture
def web_tier(started_tiers: list[DaphneServer], e2e_env: dict[str, str], e2e_log_dir: Path) -> DaphneServer:
    """The tests of this module share one running tier; after a test that stopped it, the next
    gets a new one (the stopping test comes last, so a run of the module starts one)."""
    if not started_tiers or not started_tiers[-1].process.alive():
        env = {**e2e_env, "THROTTLE_ANON": "100000/min"}  # many connections from one address
        started_tiers.append(start_web_tier(env, e2e_log_dir))
    return started_tiers[-1]


def children(tier: DaphneServer) -> list[psutil.Process]:
    return psutil.Process(tier.process.pid).children()


def holder(tier: DaphneServer, client: socket.socket, timeout: float = 5.0) -> int:
    """The pid of the daphne process that accepted ``client``'s connection."""
    client_port = client.getsockname()[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(tier):
            for connection in child.net_connections(kind="tcp"):
                if connection.raddr and connection.raddr.port == client_port:
                    return child.pid
        time.sleep(0.05)
    raise AssertionError(f"no process of the tier holds the connection from port {client_port}")


def http_connection(tier: DaphneServer) -> http.client.HTTPConnection:
    """A keep-alive connection that has had one answer (so it was accepted and served)."""
    connection = http.client.HTTPConnection("127.0.0.1", tier.port, timeout=10)
    connection.request("GET", "/api/v1/pairs")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    return connection


def wait_serving_from(tier: DaphneServer, pids: set[int]) -> None:
    """Until each of ``pids`` has served a connection (a daphne serves once it has loaded the app)."""
    served: set[int] = set()
    kept: list[http.client.HTTPConnection] = []  # open, so that the next goes to another process

    def each_served() -> bool:
        connection = http_connection(tier)
        kept.append(connection)
        assert connection.sock is not None
        served.add(holder(tier, connection.sock))
        return pids <= served

    try:
        wait_until(tier.process, each_served, f"serving from each of {sorted(pids)}")
    finally:
        for connection in kept:
            connection.close()


def connection_held_by_another_than(tier: DaphneServer, pid: int) -> http.client.HTTPConnection:
    for _ in range(50):
        connection = http_connection(tier)
        assert connection.sock is not None
        if holder(tier, connection.sock) != pid:
            return connection
        connection.close()
    raise AssertionError(f"50 connections in a row went to process {pid}")


# --- the processes share the port ---------------------------------------------------------


def test_connections_are_spread_over_both_processes(web_tier: DaphneServer) -> None:
    pids = {child.pid for child in children(web_tier)}
    sockets = [Socket(web_tier) for _ in range(20)]  # each has had its hello: served
    connections = [http_connection(web_tier) for _ in range(20)]
    try:
        socket_holders = [holder(web_tier, s.ws.socket) for s in sockets]
        connection_holders = [holder(web_tier, c.sock) for c in connections if c.sock is not None]
    finally:
        for s in sockets:
            s.close()
        for c in connections:
            c.close()

    assert len(pids) == PROCESSES
    assert set(socket_holders) | set(connection_holders) == pids


def test_a_socket_on_one_process_gets_the_order_update_of_an_order_placed_through_the_other(
    web_tier: DaphneServer, market: None, staff: Any
) -> None:
    owner = trader(staff)
    set_price(web_tier, staff, "BTCUSD", "64000")
    stream = Socket(web_tier)
    stream.auth(owner)
    stream.subscribe("orders", "positions")
    stream_holder = holder(web_tier, stream.ws.socket)

    rest = connection_held_by_another_than(web_tier, stream_holder)
    order = {"symbol": "BTCUSD", "side": "long", "type": "market", "collateral": "100", "leverage": "2"}
    headers = {"Authorization": f"Bearer {token(owner)}", "Content-Type": "application/json"}
    rest.request("POST", "/api/v1/orders", body=json.dumps(order), headers=headers)
    response = rest.getresponse()
    placed = json.loads(response.read())
    rest.close()

    assert response.status == 201, placed
    update = stream.recv_type("order_update")
    assert update["data"]["id"] == placed["id"]
    stream.close()


# --- supervision --------------------------------------------------------------------------


def test_a_killed_process_is_replaced_and_the_port_answers_meanwhile(web_tier: DaphneServer) -> None:
    victim, survivor = children(web_tier)
    victim.kill()
    victim.wait(timeout=5)

    with web_tier.client() as client:  # a new connection each time: only the survivor accepts
        statuses = [
            client.get("/api/v1/pairs", headers={"Connection": "close"}).status_code for _ in range(5)
        ]
    assert statuses == [200] * 5

    def replaced() -> bool:
        pids = {child.pid for child in children(web_tier)}
        return len(pids) == PROCESSES and victim.pid not in pids

    wait_until(web_tier.process, replaced, "running a new process in place of the killed one")
    assert survivor.is_running()
    assert "exited (signal SIGKILL)" in web_tier.process.output()
    wait_serving_from(web_tier, {child.pid for child in children(web_tier)})


def test_sigterm_stops_every_process_and_exits_0(web_tier: DaphneServer) -> None:
    pids = [child.pid for child in children(web_tier)]
    stream = Socket(web_tier)

    web_tier.process.popen.send_signal(signal.SIGTERM)
    try:
        returncode = web_tier.process.popen.wait(timeout=15)
    except subprocess.TimeoutExpired:
        web_tier.process.fail("the web tier still runs 15 s after SIGTERM")

    assert returncode == 0, web_tier.process.output()
    assert len(pids) == PROCESSES
    assert [pid for pid in pids if psutil.pid_exists(pid)] == []  # stopped and reaped: no orphan
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web_tier.port), timeout=1).close()
    stream.close()
