"""Deposits run by real processes: a Celery worker (killed mid-swap in one test), daphne with a
WebSocket client, webhook deliveries to a loopback receiver, the local EVM and the LI-FI
simulator over HTTP. Configuration reaches the processes the way an operator's would: as
provider configuration versions and runtime settings in the database.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rest_framework_simplejwt.tokens import AccessToken
from web3 import Web3
from websockets.sync.client import connect

from accounts.models import Wallet
from accounts.services.wallets import wallet_mpc_create
from demo.lifi_simulator import LifiSimulator
from demo.localchain.chain import NATIVE_COIN, LocalChain
from deposits.app_settings import DEPOSIT_POLICY
from deposits.models import Deposit, DepositStatus, Swap, SwapStatus
from deposits.services import intake
from deposits.tasks import deposits_advance_due
from ledger.checks import ledger_check
from ledger.models import LedgerTransaction, TransactionKind
from marqetfi.celery import app
from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_set
from providers import registry
from providers.breaker import breaker_reset
from providers.services.configs import provider_config_create
from tests.e2e.conftest import DaphneServer, start_celery_worker
from tests.e2e.test_webhooks_worker import endpoint_for, verified
from tests.ledger.factories import new_user
from tests.webhooks.receiver import running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONFIRMATIONS = 2
DEPOSIT_RAW = 150_000_000  # 150 USDT
RATE = 998 * 10**15
WAIT_SECONDS = 60.0


@dataclass
class World:
    chain: LocalChain
    usdc: str
    usdt: str
    router: str
    lifi: LifiSimulator
    env: dict[str, str]


@pytest.fixture
def world(local_chain: LocalChain, e2e_env: dict[str, str]) -> Iterator[World]:
    usdc = local_chain.deploy_token("USDC", 6, 10**18)
    usdt = local_chain.deploy_token("USDT", 6, 10**18)
    router = local_chain.deploy_swap_router(usdc)
    local_chain.transfer_token(usdc, local_chain.deployer, router, 10**15)
    local_chain.set_swap_rate(router, usdt, RATE)
    local_chain.set_swap_rate(router, NATIVE_COIN, 3000 * 10**6)
    lifi = LifiSimulator(local_chain.rpc_url, router, usdc, delay_seconds=1)
    lifi_url = lifi.start()
    chains = {
        str(local_chain.chain_id): {
            "name": "Local test chain",
            "rpc_url": local_chain.rpc_url,
            "confirmations": CONFIRMATIONS,
            "tokens": {"USDC": {"address": usdc, "decimals": 6}, "USDT": {"address": usdt, "decimals": 6}},
        }
    }
    provider_config_create(name="chains", values={"chains": chains})
    provider_config_create(name="lifi", values={"base_url": lifi_url, "timeout": "5"})
    app_setting_set(
        key=DEPOSIT_POLICY.key,
        value={
            "settlement_chain_id": local_chain.chain_id,
            "settlement_token": usdc,
            "collection_address": local_chain.accounts[9].address,
            "poll_base_seconds": 1,
            "poll_max_seconds": 2,
        },
        actor=None,
    )
    app_settings_cache.clear()
    breaker_reset("lifi")
    queue = f"{e2e_env['CELERY_QUEUE']}-deposits-{uuid.uuid4().hex[:6]}"
    before = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    env = {**e2e_env, "CELERY_QUEUE": queue, "DEPOSIT_STEP_LEASE_SECONDS": "2"}
    try:
        yield World(chain=local_chain, usdc=usdc, usdt=usdt, router=router, lifi=lifi, env=env)
    finally:
        app.conf.task_default_queue = before
        local_chain.rpc_app.release("eth_sendRawTransaction")
        lifi.stop()
        registry.config_generation.bump()  # the rows go with the test: processes forget them
        registry.reset_cache()
        app_settings_cache.clear()


def _trader(world: World) -> tuple[Any, Wallet]:
    user = new_user()
    wallet, _ = wallet_mpc_create(user=user, provider="local")
    world.chain.send_eth(world.chain.deployer, wallet.address, 10**18)  # gas
    return user, wallet


def _deposit(world: World, user: Any, wallet: Wallet) -> Deposit:
    tx_hash = world.chain.transfer_token(world.usdt, world.chain.deployer, wallet.address, DEPOSIT_RAW)
    world.chain.mine(CONFIRMATIONS)
    (deposit,), _ = intake.deposit_report(user=user, chain_id=world.chain.chain_id, tx_hash=tx_hash)
    return deposit


def _beat_until(done: Callable[[], bool], what: str) -> None:
    """Do beat's job (hand due deposits to the workers, mine a block) until ``done``."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if done():
            return
        deposits_advance_due()
        time.sleep(0.3)
    pytest.fail(f"{what} not seen within {WAIT_SECONDS} s")


def _swaps_on_chain(world: World, sender: str) -> list[dict[str, Any]]:
    router = world.chain.contract("TestSwapRouter", world.router)
    return [
        dict(log["args"])
        for log in router.events.Swapped().get_logs(from_block=0)
        if log["args"]["sender"] == sender
    ]


def test_a_worker_killed_while_sending_the_swap_resumes_without_a_second_transaction_or_credit(
    world: World, e2e_log_dir: Path
) -> None:
    user, wallet = _trader(world)
    deposit = _deposit(world, user, wallet)
    # The node takes the approval, then keeps the swap transaction waiting unanswered: the
    # worker has handed it over and is killed before it hears back.
    world.chain.rpc_app.hold("eth_sendRawTransaction", skip=1)
    first = start_celery_worker(world.env, e2e_log_dir)
    try:
        _beat_until(lambda: world.chain.rpc_app.held("eth_sendRawTransaction") == 1, "the swap being sent")
        swap = Swap.objects.get(deposit=deposit)
        assert swap.status == SwapStatus.SENDING and swap.tx_hash == ""
        first.process.stop(signal.SIGKILL)
    finally:
        first.process.stop()
    nonce_before = world.chain.w3.eth.get_transaction_count(Web3.to_checksum_address(wallet.address))
    world.chain.rpc_app.release("eth_sendRawTransaction")  # the node processes it after all
    _beat_until(
        lambda: (
            world.chain.w3.eth.get_transaction_count(Web3.to_checksum_address(wallet.address))
            == nonce_before + 1
        ),
        "mined",
    )

    second = start_celery_worker(world.env, e2e_log_dir)
    try:
        _beat_until(
            lambda: (
                Deposit.objects.get(pk=deposit.pk).status in (DepositStatus.COMPLETED, DepositStatus.FAILED)
            ),
            "the deposit settled",
        )
    finally:
        second.process.stop()

    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.COMPLETED, deposit.failure_reason
    (swap,) = Swap.objects.filter(deposit=deposit)
    assert swap.status == SwapStatus.DONE and swap.tx_hash
    (on_chain,) = _swaps_on_chain(world, wallet.address)  # one swap transaction, not two
    assert (
        world.chain.w3.eth.get_transaction_count(Web3.to_checksum_address(wallet.address)) == 2
    )  # the approval and the swap
    assert int(swap.received_amount_raw) == on_chain["toAmount"] == DEPOSIT_RAW * RATE // 10**18
    credits = LedgerTransaction.objects.filter(
        kind=TransactionKind.DEPOSIT, reference=f"deposit:{deposit.pk}"
    )
    assert credits.count() == 1
    assert ledger_check() == []


class SocketCollector:
    """A phone's WebSocket: subscribed to ``deposits``, keeping every message it receives."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self._connection = connect(f"{ws_url}?token={token}", open_timeout=10)
        self._connection.send(json.dumps({"op": "subscribe", "channels": ["deposits"]}))
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

    def updates(self) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("type") == "deposit_update" and not m.get("snapshot")]

    def close(self) -> None:
        self._connection.close()
        self._thread.join(timeout=5)


def test_deposit_updates_reach_the_socket_and_the_webhooks_in_order(
    world: World, daphne_server: DaphneServer, e2e_log_dir: Path
) -> None:
    user, wallet = _trader(world)
    worker = start_celery_worker(world.env, e2e_log_dir)
    socket = SocketCollector(daphne_server.ws_url, str(AccessToken.for_user(user)))
    try:
        with running_receiver() as receiver:
            _, secret = endpoint_for(user, receiver.url)
            _beat_until(lambda: any(m.get("type") == "subscribed" for m in socket.messages), "subscribed")
            deposit = _deposit(world, user, wallet)
            expected = [
                "deposit.received",
                "deposit.confirmed",
                "swap.started",
                "swap.completed",
                "deposit.completed",
            ]
            _beat_until(
                lambda: len(socket.updates()) >= len(expected) and len(receiver.received) >= len(expected),
                "every update on the socket and at the receiver",
            )
            bodies = [verified(request, secret) for request in receiver.received]
    finally:
        socket.close()
        worker.process.stop()

    updates = socket.updates()
    assert [u["data"]["id"] for u in updates] == [str(deposit.pk)] * len(expected)
    seqs = [u["seq"] for u in updates]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    statuses = [u["data"]["status"] for u in updates]
    assert statuses[0] == "detected" and statuses[-1] == "completed"
    versions = [u["data"]["resource_version"] for u in updates]
    assert versions == sorted(versions)
    assert [b["type"] for b in bodies] == expected
    assert [b["seq"] for b in bodies] == seqs
    assert bodies[-1]["data"]["credited_amount"] == updates[-1]["data"]["credited_amount"]
    assert bodies[-1]["data"]["amount"] == "150" and bodies[-1]["data"]["token"]["symbol"] == "USDT"
