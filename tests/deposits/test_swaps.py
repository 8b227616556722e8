"""Deposits that need a swap: LI-FI (the simulator, answering in LI-FI's format) quotes a route
through the local chain's swap router; the user's wallet approves and sends on chain; the
state machine polls the status and credits what LI-FI says was received, once.

Scripted answers stand in for what the simulator does not do by itself (a PENDING that
lasts, a FAILED transfer, 429 / 500 / slow answers, a quote with too much slippage).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from accounts.models import Wallet
from accounts.services.wallets import wallet_mpc_create
from conftest import bearer_client
from demo.lifi_simulator import LifiSimulator, ScriptedResponse
from demo.localchain.chain import LocalChain
from deposits.errors import PlatformTransaction
from deposits.models import Deposit, DepositStatus, Swap, SwapStatus
from deposits.services import intake, machine
from ledger.checks import ledger_check
from marqetfi.core.models import Event, OperatorAlert
from providers import registry
from providers.breaker import breaker_reset
from tests.deposits.chain_setup import CONFIRMATIONS, DepositChain, deposit_chain_configured
from tests.ledger.factories import new_user

pytestmark = pytest.mark.django_db

USDT_TO_USDC_RATE = 999 * 10**15  # 0.999 USDC base unit per USDT base unit, x1e18
DEPOSIT_RAW = 200_000_000  # 200 USDT


@dataclass
class SwapWorld:
    setup: DepositChain
    router: str
    lifi: LifiSimulator

    @property
    def chain(self) -> LocalChain:
        return self.setup.chain


GAS_STATION = 8  # index of the local chain's funded account that plays the gas station


@pytest.fixture
def world(local_chain: LocalChain) -> Iterator[SwapWorld]:
    station_key = "0x" + bytes(local_chain.accounts[GAS_STATION].key).hex()
    with deposit_chain_configured(local_chain, gas_station_key=station_key) as setup:
        router = local_chain.deploy_swap_router(setup.usdc)
        local_chain.transfer_token(setup.usdc, local_chain.deployer, router, 10**15)
        local_chain.set_swap_rate(router, setup.usdt, USDT_TO_USDC_RATE)
        local_chain.set_swap_rate(router, "0x0000000000000000000000000000000000000000", 3000 * 10**6)
        lifi = LifiSimulator(local_chain.rpc_url, router, setup.usdc, delay_seconds=0)
        providers = copy.deepcopy(django_settings.PROVIDERS)
        providers["lifi"]["options"] = {
            **providers["lifi"]["options"],
            "base_url": lifi.start(),
            "timeout": "1",
        }
        with override_settings(PROVIDERS=providers):
            registry.reset_cache()
            breaker_reset("lifi")  # earlier tests may have found LI-FI unreachable
            setup.policy(max_swap_attempts=2, poll_base_seconds=1, max_slippage="0.01")
            try:
                yield SwapWorld(setup=setup, router=router, lifi=lifi)
            finally:
                lifi.stop()
                registry.reset_cache()


def _funded_trader(world: SwapWorld) -> tuple[Any, Wallet]:
    user = new_user()
    wallet, _ = wallet_mpc_create(user=user, provider="local")
    world.chain.send_eth(world.chain.deployer, wallet.address, 10**18)  # its own gas: no top-up
    return user, wallet


def _deposit_usdt(world: SwapWorld, user: Any, wallet: Wallet) -> Deposit:
    tx_hash = world.chain.transfer_token(world.setup.usdt, world.chain.deployer, wallet.address, DEPOSIT_RAW)
    world.chain.mine(CONFIRMATIONS)
    (deposit,), _ = intake.deposit_report(user=user, chain_id=world.setup.chain_id, tx_hash=tx_hash)
    return deposit


def _step(deposit: Deposit) -> Deposit:
    """One step now, as if its time had come (the worker, handed the deposit by beat)."""
    Deposit.objects.filter(pk=deposit.pk).update(next_action_at=timezone.now())
    machine.deposit_advance(deposit_id=deposit.pk)
    deposit.refresh_from_db()
    return deposit


def _run(
    deposit: Deposit,
    *,
    steps: int = 30,
    until: frozenset[str] = frozenset({"completed", "failed", "refunded"}),
) -> Deposit:
    for _ in range(steps):
        deposit = _step(deposit)
        if deposit.status in until:
            break
    return deposit


def _available(user: Any) -> Decimal:
    return Decimal(bearer_client(user).get("/api/v1/account").json()["available"])


def _router_swaps(world: SwapWorld) -> list[dict[str, Any]]:
    router = world.chain.contract("TestSwapRouter", world.router)
    return [dict(log["args"]) for log in router.events.Swapped().get_logs(from_block=0)]


def _swaps_from(world: SwapWorld, wallet: Wallet) -> list[dict[str, Any]]:
    return [swap for swap in _router_swaps(world) if swap["sender"] == wallet.address]


def _expected_usdc(raw: int = DEPOSIT_RAW) -> int:
    return raw * USDT_TO_USDC_RATE // 10**18


def test_a_usdt_deposit_is_swapped_and_the_received_amount_credited_once(world):
    user, wallet = _funded_trader(world)
    collected_before = world.chain.token_balance(world.setup.usdc, world.setup.collection)
    deposit = _run(_deposit_usdt(world, user, wallet))

    assert deposit.status == DepositStatus.COMPLETED, deposit.failure_reason
    (swap,) = Swap.objects.filter(deposit=deposit)
    assert swap.status == SwapStatus.DONE and swap.approval_tx_hash and swap.tx_hash
    (on_chain,) = _swaps_from(world, wallet)
    assert on_chain["toAmount"] == _expected_usdc() == int(swap.received_amount_raw)
    assert on_chain["recipient"] == world.setup.collection == swap.to_address
    # Delivered to the platform's collection address, credited exactly what was received.
    collected = world.chain.token_balance(world.setup.usdc, world.setup.collection) - collected_before
    assert collected == _expected_usdc()
    assert deposit.credited_amount == Decimal(_expected_usdc()).scaleb(-6) == _available(user)
    types = [t for t in Event.objects.filter(user=user).values_list("type", flat=True) if "." in t]
    assert [t for t in types if t.split(".")[0] in ("deposit", "swap")] == [
        "deposit.received",
        "deposit.confirmed",
        "swap.started",
        "swap.completed",
        "deposit.completed",
    ]
    _run(deposit)  # nothing more to do
    intake.deposits_scan_chain(chain_id=world.setup.chain_id)  # the swap's own transfers are no deposit
    assert Deposit.objects.filter(user=user).count() == 1
    assert _available(user) == deposit.credited_amount
    assert ledger_check() == []


def test_without_a_collection_address_swaps_wait_and_operators_are_told(world):
    world.setup.policy(collection_address="", max_swap_attempts=2, poll_base_seconds=1, max_slippage="0.01")
    user, wallet = _funded_trader(world)
    deposit = _run(_deposit_usdt(world, user, wallet), steps=4)
    assert deposit.status == DepositStatus.QUOTING and deposit.next_action_at > timezone.now()
    assert not Swap.objects.filter(deposit=deposit).exists() and _swaps_from(world, wallet) == []
    assert OperatorAlert.objects.filter(code="no_collection_address").exists()
    world.setup.policy(max_swap_attempts=2, poll_base_seconds=1, max_slippage="0.01")
    assert _run(deposit).status == DepositStatus.COMPLETED


def _pending(substatus: str = "WAIT_DESTINATION_TRANSACTION") -> ScriptedResponse:
    return ScriptedResponse(
        body={
            "status": "PENDING",
            "substatus": substatus,
            "substatusMessage": "The bridge is waiting for the destination transaction.",
            "sending": {"chainId": 1},
            "receiving": {"chainId": 42161},
        }
    )


def test_pending_for_several_polls_then_done_credits_once(world):
    world.lifi.script("/status", [_pending(), _pending(), _pending("WAIT_SOURCE_CONFIRMATIONS")])
    user, wallet = _funded_trader(world)
    deposit = _run(_deposit_usdt(world, user, wallet), until=frozenset({"bridging"}))
    for _ in range(3):
        deposit = _step(deposit)
        assert deposit.status == DepositStatus.BRIDGING and _available(user) == 0
    deposit = _run(deposit)
    assert deposit.status == DepositStatus.COMPLETED
    (swap,) = Swap.objects.filter(deposit=deposit)
    assert swap.polls == 4
    assert _available(user) == Decimal(_expected_usdc()).scaleb(-6)
    assert ledger_check() == []


def test_a_failed_transfer_is_retried_with_a_fresh_quote_and_only_the_second_is_credited(world):
    failed = ScriptedResponse(
        body={
            "status": "FAILED",
            "substatus": "SLIPPAGE_EXCEEDED",
            "substatusMessage": "The price moved too much.",
            "sending": {"chainId": 1, "txHash": "0x" + "11" * 32, "amount": str(DEPOSIT_RAW)},
        }
    )
    world.lifi.script("/status", [failed])
    user, wallet = _funded_trader(world)
    deposit = _run(_deposit_usdt(world, user, wallet), until=frozenset({"bridging"}))
    deposit = _step(deposit)  # LI-FI: FAILED
    # The first attempt failed after the transaction; LI-FI refunds the sender, so the wallet
    # holds the USDT again for the second attempt (the test gives it back).
    deposit.refresh_from_db()
    assert deposit.status == DepositStatus.QUOTING and deposit.swap_attempts == 1
    world.chain.transfer_token(world.setup.usdt, world.chain.deployer, wallet.address, DEPOSIT_RAW)
    deposit = _run(deposit)
    assert deposit.status == DepositStatus.COMPLETED
    swaps = list(Swap.objects.filter(deposit=deposit).order_by("attempt"))
    assert [s.status for s in swaps] == [SwapStatus.FAILED, SwapStatus.DONE]
    assert swaps[0].failure_code == "swap_slippage_exceeded"
    assert swaps[0].quote_id != swaps[1].quote_id
    assert (
        deposit.credited_amount == Decimal(int(swaps[1].received_amount_raw)).scaleb(-6) == _available(user)
    )
    assert Event.objects.filter(user=user, type="swap.failed").count() == 1
    assert ledger_check() == []


def test_a_quote_beyond_the_slippage_limit_is_refused_and_nothing_is_sent(world):
    user, wallet = _funded_trader(world)
    deposit = _deposit_usdt(world, user, wallet)
    params = {
        "fromChain": world.setup.chain_id,
        "toChain": world.setup.chain_id,
        "fromToken": world.setup.usdt,
        "toToken": world.setup.usdc,
        "fromAddress": wallet.address,
        "toAddress": world.setup.collection,
        "fromAmount": str(DEPOSIT_RAW),
        "slippage": "0.01",
    }
    greedy = httpx.get(f"{world.lifi.base_url}/quote", params=params).json()
    greedy["estimate"]["toAmountMin"] = str(int(greedy["estimate"]["toAmount"]) * 95 // 100)  # 5 %
    world.lifi.script("/quote", [ScriptedResponse(body=greedy), ScriptedResponse(body=greedy)])

    deposit = _run(deposit)
    assert deposit.status == DepositStatus.FAILED
    assert deposit.failure_code == "slippage_exceeded" and deposit.swap_attempts == 2
    assert not Swap.objects.filter(deposit=deposit).exists()
    assert _swaps_from(world, wallet) == []
    assert world.chain.token_balance(world.setup.usdt, wallet.address) == DEPOSIT_RAW
    assert _available(user) == 0 and deposit.credited_amount is None
    assert OperatorAlert.objects.filter(source="deposits", reference=f"deposit:{deposit.pk}").exists()
    assert ledger_check() == []


def test_lifi_errors_and_timeouts_back_off_and_recover(world):
    user, wallet = _funded_trader(world)
    deposit = _deposit_usdt(world, user, wallet)
    deposit = _run(deposit, until=frozenset({"quoting"}))
    rate_limited = ScriptedResponse(
        status_code=429,
        body={"message": "Rate limit exceeded", "code": 1005},
        headers={"Retry-After": "30"},
    )
    server_error = ScriptedResponse(status_code=500, body={"message": "Internal error", "code": 1006})
    slow = ScriptedResponse(body={"status": "PENDING"}, delay_seconds=2.5)  # past the 1 s timeout
    world.lifi.script("/quote", [rate_limited] * 3)
    before = timezone.now()
    deposit = _step(deposit)
    assert deposit.status == DepositStatus.QUOTING and deposit.step_failures == 1
    assert (deposit.next_action_at - before).total_seconds() >= 29  # LI-FI's Retry-After respected

    world.lifi.script("/status", [server_error] * 3 + [slow] * 3)
    deposit = _run(deposit, until=frozenset({"bridging"}))
    deposit = _step(deposit)  # 500s
    assert deposit.status == DepositStatus.BRIDGING and deposit.step_failures == 1
    deposit = _step(deposit)  # timeouts
    assert deposit.status == DepositStatus.BRIDGING and deposit.step_failures == 2
    assert deposit.next_action_at > timezone.now()
    deposit = _run(deposit)
    assert deposit.status == DepositStatus.COMPLETED
    assert _available(user) == Decimal(_expected_usdc()).scaleb(-6)
    assert len(_swaps_from(world, wallet)) == 1
    assert ledger_check() == []


def test_a_native_deposit_keeps_gas_and_swaps_the_rest(world):
    user, wallet = _funded_trader(world)
    tx_hash = world.chain.send_eth(world.chain.deployer, wallet.address, 10**17)  # 0.1 ETH
    world.chain.mine(CONFIRMATIONS)
    (deposit,), _ = intake.deposit_report(user=user, chain_id=world.setup.chain_id, tx_hash=tx_hash)
    deposit = _run(deposit)
    assert deposit.status == DepositStatus.COMPLETED, deposit.failure_reason
    (swap,) = Swap.objects.filter(deposit=deposit)
    kept_for_gas = 10**17 - int(swap.from_amount_raw)
    assert 2 * 10**15 <= kept_for_gas < 10**17  # at least the policy's reserve, more if fees ask
    assert not swap.approval_tx_hash  # the native coin needs no approval
    assert deposit.credited_amount == Decimal(int(swap.from_amount_raw) * 3000 * 10**6 // 10**18).scaleb(-6)
    assert ledger_check() == []


def test_a_token_deposit_without_gas_is_topped_up_by_the_gas_station_once(world):
    user = new_user()
    wallet, _ = wallet_mpc_create(user=user, provider="local")  # no ETH at all
    station = world.chain.accounts[GAS_STATION].address
    station_nonce = world.chain.w3.eth.get_transaction_count(station)
    deposit = _run(_deposit_usdt(world, user, wallet))
    history = list(deposit.transitions.values_list("reason", "details"))
    assert deposit.status == DepositStatus.COMPLETED, history
    (swap,) = Swap.objects.filter(deposit=deposit)
    topup = world.chain.w3.eth.get_transaction(swap.gas_topup_tx_hash)
    assert topup["from"] == station and topup["to"] == wallet.address and topup["value"] >= 2 * 10**15
    assert world.chain.w3.eth.get_transaction_count(station) == station_nonce + 1
    assert _available(user) == Decimal(_expected_usdc()).scaleb(-6)
    # The top-up pays the deposit address, but it is the platform's, not a deposit.
    intake.deposits_scan_chain(chain_id=world.setup.chain_id)
    assert Deposit.objects.filter(user=user).count() == 1
    with pytest.raises(PlatformTransaction):
        intake.deposit_report(user=user, chain_id=world.setup.chain_id, tx_hash=swap.gas_topup_tx_hash)


def test_without_gas_or_a_gas_station_the_deposit_fails_clearly_and_nothing_is_sent(world, local_chain):
    user = new_user()
    wallet, _ = wallet_mpc_create(user=user, provider="local")
    with deposit_chain_configured(local_chain) as setup:  # the same kind of chain, no gas station
        world.setup.usdt, world.setup.usdc = setup.usdt, setup.usdc
        router = local_chain.deploy_swap_router(setup.usdc)
        local_chain.set_swap_rate(router, setup.usdt, USDT_TO_USDC_RATE)
        lifi = LifiSimulator(local_chain.rpc_url, router, setup.usdc, delay_seconds=0)
        providers = copy.deepcopy(django_settings.PROVIDERS)
        providers["lifi"]["options"] = {**providers["lifi"]["options"], "base_url": lifi.start()}
        try:
            with override_settings(PROVIDERS=providers):
                registry.reset_cache()
                deposit = _run(_deposit_usdt(world, user, wallet))
        finally:
            lifi.stop()
    history = list(deposit.transitions.values_list("reason", "details"))
    assert deposit.status == DepositStatus.FAILED and deposit.failure_code == "insufficient_gas", history
    assert "gas" in deposit.failure_reason and "0x" not in deposit.failure_reason
    assert local_chain.w3.eth.get_transaction_count(wallet.address) == 0
    assert OperatorAlert.objects.filter(code="insufficient_gas", reference=f"deposit:{deposit.pk}").exists()
    assert _available(user) == 0 and ledger_check() == []
