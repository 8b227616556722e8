"""One trader's journey over real processes, seen only as a mobile app sees it.

Web (daphne), a Celery worker, beat, the price feed, the trigger firing consumer and the venue
follower run as processes on the session's database and Redis (the embedded defaults, or
``DATABASE_URL`` / ``REDIS_URL``); the local chain and the simulated LI-FI run as ``manage.py localchain``, as
under ``make run``. The test sets the platform up the way ``seed_demo`` does (an operator's
job), then speaks HTTP and WebSocket only: register with email, link a wallet by SIWE, create
the MPC wallet, receive USDT on the chain (swapped to USDC through LI-FI and credited), open
a position with a stop-loss and a take-profit, have staff move the paper price through the
stop, and see the stop fire on the socket and as verified webhooks, then in ``/analytics``.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from websockets.sync.client import connect

from accounts.models import User
from backoffice.operator_groups import TRADING_OPERATIONS, operator_groups_sync
from demo.localchain.devstack import DevStack, devstack_send, devstack_state_read
from demo.services import demo_deposits_configure, demo_market_ensure
from deposits.app_settings import DEPOSIT_POLICY
from ledger.checks import ledger_check
from marqetfi.celery import app
from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_set
from providers import registry
from providers.breaker import breaker_reset
from providers.models import RoutingRule
from providers.services.routing import routing_rule_create
from tests.accounts.conftest import SIWE_DOMAIN, EthWallet
from tests.e2e.conftest import DaphneServer, ManagedProcess, start_celery_worker, start_daphne, start_process
from tests.e2e.test_webhooks_worker import verified
from tests.webhooks.receiver import Receiver, running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 45.0
SYMBOL = "BTCUSD"
ENTRY = Decimal(60000)
STOP_LOSS = Decimal(57000)
TAKE_PROFIT = Decimal(63000)
CRASH = Decimal(55000)
DEPOSIT_USDT = Decimal(150)
PASSWORD = "correct horse battery staple 7"


@dataclass
class Platform:
    server: DaphneServer
    stack: DevStack
    processes: list[ManagedProcess]
    admin_email: str
    admin_password: str


def wait_for(
    done: Callable[[], Any], what: str, processes: list[ManagedProcess], explain: Callable[[], str] = str
) -> Any:
    """Poll ``done`` until it returns something truthy (returned); fail saying what was missing."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for process in processes:
            if not process.alive():
                process.fail(f"{process.name} exited ({process.popen.returncode}) while waiting for {what}")
        result = done()
        if result:
            return result
        time.sleep(0.2)
    logs = "\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in processes)
    pytest.fail(f"{what}: not seen within {WAIT_SECONDS} s\n{explain()}\n{logs}")


def _manage(name: str, *args: str, env: dict[str, str], log_dir: Path) -> ManagedProcess:
    return start_process(name, [sys.executable, "manage.py", *args], env, log_dir)


@pytest.fixture
def platform(e2e_env: dict[str, str], e2e_log_dir: Path) -> Iterator[Platform]:
    """Every process of ``make run`` on the test database, and the operator's setup."""
    queue = f"{e2e_env['CELERY_QUEUE']}-journey-{uuid.uuid4().hex[:6]}"
    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    env = {
        **e2e_env,
        "CELERY_QUEUE": queue,
        "DEPOSIT_SCAN_INTERVAL_SECONDS": "1",
        "DEPOSIT_ADVANCE_INTERVAL_SECONDS": "1",
        # An ordered webhook delivery that finds an earlier one in flight waits out that one's
        # lease unless that one's success wakes it, and a success committing while the later one
        # is being claimed can miss it (PostgreSQL): a short lease bounds that wait.
        "WEBHOOK_ATTEMPT_LEASE_MARGIN_SECONDS": "1",
        "WEBHOOK_ORDERED_RECHECK_SECONDS": "1",
    }
    state_file = e2e_log_dir / f"localchain-{uuid.uuid4().hex[:6]}.json"
    processes: list[ManagedProcess] = []
    # What seed_demo does under make run, with the crypto route on the paper venue alone (no
    # real venue is reachable from a test).
    routing_rule_create(match=RoutingRule.Match.CATEGORY, value="crypto", venues=["paper"])
    demo_market_ensure()
    try:
        chain = _manage(
            "localchain",
            "localchain", "--port", "0", "--lifi-port", "0", "--block-seconds", "0.5",
            "--state-file", str(state_file),
            env=env, log_dir=e2e_log_dir,
        )  # fmt: skip
        processes.append(chain)
        # Every process starts while the chain deploys its contracts (start-ups overlap); the
        # configuration written below reaches them as it would reach running processes.
        processes.append(
            start_process(
                "beat",
                [
                    sys.executable, "-m", "celery", "-A", "marqetfi", "beat", "--loglevel", "INFO",
                    "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile=",
                ],
                env,
                e2e_log_dir,
            )
        )  # fmt: skip
        processes.append(_manage("feed", "pricefeed", env=env, log_dir=e2e_log_dir))
        processes.append(_manage("fire", "triggerfire", env=env, log_dir=e2e_log_dir))
        processes.append(_manage("follow", "venuefollow", env=env, log_dir=e2e_log_dir))
        server = start_daphne(env, e2e_log_dir)
        processes.append(server.process)
        # A trading operator: signed up like anyone (so the password is hashed the way the
        # server checks it), then made staff in the Trading operations group (moves paper prices).
        admin_email, admin_password = "ops@journey.test", "ops password 7 journey"
        with server.client() as client:
            _ok(
                client.post("/api/v1/auth/register", json={"email": admin_email, "password": admin_password}),
                201,
            )
        User.objects.filter(email=admin_email).update(is_staff=True)
        operator_groups_sync(apps=django_apps)  # a transactional test's flush may have dropped them
        User.objects.get(email=admin_email).groups.add(Group.objects.get(name=TRADING_OPERATIONS))
        processes.append(start_celery_worker(env, e2e_log_dir, concurrency=2).process)
        wait_for(state_file.exists, "the local chain's state file", processes)
        stack = devstack_state_read(state_file)

        demo_deposits_configure(stack=stack)  # and the policy settling in its USDC, polled often
        app_setting_set(
            key=DEPOSIT_POLICY.key,
            value={
                "settlement_chain_id": stack.chain_id,
                "settlement_token": stack.tokens["USDC"].address,
                "collection_address": stack.collection_address,
                "poll_base_seconds": 1,
                "poll_max_seconds": 2,
            },
            actor=None,
        )
        app_setting_set(
            key="webhook_retry_policy",
            value={"max_retries": 3, "base_delay_seconds": 1, "max_delay_seconds": 4, "timeout_seconds": 3},
            actor=None,
        )
        app_settings_cache.clear()
        breaker_reset("lifi")
        yield Platform(server, stack, processes, admin_email, admin_password)
    finally:
        for process in processes:  # all at once: each takes seconds to shut down
            if process.alive():
                process.popen.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            process.stop()
        app.conf.task_default_queue = before
        registry.config_generation.bump()  # the rows go with the test: processes forget them
        registry.reset_cache()
        app_settings_cache.clear()


class Phone:
    """The app's WebSocket: subscribed to deposits, orders and positions, keeping every message."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._connection = connect(ws_url, open_timeout=10)
        self._connection.send(json.dumps({"op": "auth", "token": token}))
        self._connection.send(
            json.dumps(
                {"op": "subscribe", "channels": ["deposits", "orders", "positions", f"prices:{SYMBOL}"]}
            )
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self._connection:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    self._connection.send(json.dumps({"op": "pong"}))
                self.messages.append(message)
        except Exception:  # noqa: BLE001 - the socket closed: the test reads what arrived
            return

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == kind and not m.get("snapshot")]

    def subscribed(self) -> bool:
        return any(
            m.get("type") == "subscribed" and "positions" in m.get("channels", [])
            for m in list(self.messages)
        )

    def close(self) -> None:
        self._connection.close()
        self._thread.join(timeout=5)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json()


def _siwe_link(client: httpx.Client, wallet: EthWallet) -> dict[str, Any]:
    nonce = _ok(client.post("/api/v1/auth/siwe/nonce"))["nonce"]
    message = wallet.siwe_message(nonce, domain=SIWE_DOMAIN)
    return _ok(
        client.post("/api/v1/wallets/external", json={"message": message, "signature": wallet.sign(message)}),
        201,
    )


def _position_closed(receiver: Receiver) -> bool:
    return any(b'"position.closed"' in r.body for r in list(receiver.received))


def test_a_trader_goes_from_sign_up_to_a_trade_closed_by_its_stop_loss(platform: Platform) -> None:
    server, processes = platform.server, platform.processes
    email = f"trader-{uuid.uuid4().hex[:8]}@journey.test"
    with server.client() as anonymous:
        registered = _ok(
            anonymous.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}), 201
        )
        assert registered["user"]["email"] == email
        login = _ok(anonymous.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}))
        admin_login = _ok(
            anonymous.post(
                "/api/v1/auth/login",
                json={"email": platform.admin_email, "password": platform.admin_password},
            )
        )
    token = login["access"]
    app_client = server.client(headers={"Authorization": f"Bearer {token}"})
    admin = server.client(headers={"Authorization": f"Bearer {admin_login['access']}"})
    phone = Phone(server.ws_url, token)
    try:
        with running_receiver() as receiver, app_client, admin:
            # A wallet app signs an EIP-4361 message: the external wallet is linked.
            external = EthWallet()
            linked = _siwe_link(app_client, external)
            assert linked["address"].lower() == external.address.lower()

            # The MPC wallet, and where to send funds (the same wallet).
            mpc = _ok(app_client.post("/api/v1/wallets/mpc", json={"provider": "local"}), 201)
            address = _ok(app_client.get("/api/v1/deposits/address"))
            assert address["address"] == mpc["address"]
            chains = {c["chain_id"]: c for c in address["chains"]}
            assert {t["symbol"] for t in chains[platform.stack.chain_id]["tokens"]} >= {"USDC", "USDT"}
            me = _ok(app_client.get("/api/v1/me"))
            assert {w["address"].lower() for w in me["wallets"]} == {
                external.address.lower(),
                mpc["address"].lower(),
            }

            endpoint = _ok(app_client.post("/api/v1/webhooks/endpoints", json={"url": receiver.url}), 201)
            secret = endpoint["secret"]
            wait_for(phone.subscribed, "the socket subscribed", processes)

            # USDT arrives on the chain: detected, confirmed, swapped to USDC by LI-FI, credited.
            devstack_send(stack=platform.stack, to=address["address"], symbol="USDT", amount=DEPOSIT_USDT)
            completed = wait_for(
                lambda: [u for u in phone.events("deposit_update") if u["data"]["status"] == "completed"],
                "the deposit completed on the socket",
                processes,
            )
            deposit = completed[-1]["data"]
            assert deposit["token"]["symbol"] == "USDT" and Decimal(deposit["amount"]) == DEPOSIT_USDT
            credited = Decimal(deposit["credited_amount"])
            assert Decimal(140) < credited < DEPOSIT_USDT  # 1:1 less the router's 0.1 % and fees
            statuses = [u["data"]["status"] for u in phone.events("deposit_update")]
            assert statuses[0] == "detected", statuses
            account = _ok(app_client.get("/api/v1/account"))
            assert Decimal(account["available"]) == credited

            # A market long with a stop-loss and a take-profit, at a price staff set.
            _ok(admin.post("/api/v1/admin/paper/prices", json={"symbol": SYMBOL, "price": str(ENTRY)}))
            order = _ok(
                app_client.post(
                    "/api/v1/orders",
                    json={
                        "symbol": SYMBOL,
                        "side": "long",
                        "type": "market",
                        "collateral": "100",
                        "leverage": "5",
                        "stop_loss": str(STOP_LOSS),
                        "take_profit": str(TAKE_PROFIT),
                        "client_order_id": "journey-1",
                    },
                ),
                201,
            )
            assert order["provider"] == "paper"
            filled = wait_for(
                lambda: (
                    (o := _ok(app_client.get(f"/api/v1/orders/{order['id']}")))["status"] == "filled" and o
                ),
                "the order filled",
                processes,
            )
            position_id = filled["position_id"]
            (position,) = _ok(app_client.get("/api/v1/positions"))["results"]
            assert position["id"] == position_id
            assert Decimal(position["stop_loss"]) == STOP_LOSS
            assert Decimal(position["take_profit"]) == TAKE_PROFIT

            # Staff move the price through the stop: the trigger closes the position.
            _ok(admin.post("/api/v1/admin/paper/prices", json={"symbol": SYMBOL, "price": str(CRASH)}))
            closed_updates = wait_for(
                lambda: [
                    u
                    for u in phone.events("position_update")
                    if u["data"]["id"] == position_id and u["data"]["status"] == "closed"
                ],
                "the position closed on the socket",
                processes,
            )
            wait_for(
                lambda: _position_closed(receiver),
                "position.closed at the webhook receiver",
                processes,
                explain=lambda: "delivery log: " + app_client.get("/api/v1/webhooks/deliveries").text,
            )
            # One body per event: a delivery the receiver saw twice (a retry) is the same event.
            bodies = list(
                {b["id"]: b for b in (verified(r, secret) for r in list(receiver.received))}.values()
            )
            analytics = _ok(app_client.get("/api/v1/analytics"))
            positions_after = _ok(app_client.get("/api/v1/positions"))["results"]
    finally:
        phone.close()

    assert Decimal(closed_updates[-1]["data"]["realized_pnl"]) < 0
    # The stop-loss fired: a close order by "stop_loss", filled below the stop, on the socket ...
    orders = {u["data"]["id"]: u["data"] for u in phone.events("order_update")}
    assert orders[order["id"]]["status"] == "filled"
    (stop_close,) = [o for o in orders.values() if o["position_id"] == position_id and o["id"] != order["id"]]
    assert stop_close["closed_by"] == "stop_loss" and stop_close["status"] == "filled", stop_close
    assert Decimal(stop_close["avg_fill_price"]) <= STOP_LOSS
    # ... and as webhooks the official verifier accepts, with the socket's sequence numbers.
    types = [b["type"] for b in bodies]
    for expected in ("deposit.completed", "order.filled", "position.opened", "position.closed"):
        assert expected in types, types
    (closed_body,) = [b for b in bodies if b["type"] == "position.closed"]
    assert closed_body["data"]["id"] == position_id and closed_body["data"]["status"] == "closed"
    assert closed_body["seq"] in {u["seq"] for u in phone.events("position_update")}
    fired = [b["data"] for b in bodies if b["type"] == "order.filled" and b["data"]["id"] == stop_close["id"]]
    assert fired and fired[-1]["closed_by"] == "stop_loss"
    assert positions_after == []
    assert analytics["closed_positions"] == 1, analytics
    assert analytics["trades"] == 2  # the open and the stop's close
    assert Decimal(analytics["realized_pnl"]) < 0
    assert analytics["worst_trade"]["position_id"] == position_id
    for process in processes:
        assert process.alive(), process.output()
    assert ledger_check() == []
