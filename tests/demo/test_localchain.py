"""The development stack ``make run`` puts on the local chain, and the commands that serve and use it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from eth_account import Account
from eth_typing import HexStr
from web3 import Web3

from demo.localchain.chain import NATIVE_COIN, LocalChain
from demo.localchain.devstack import (
    DEVELOPER_ADDRESS,
    DEVELOPER_KEY,
    STATE_FILE,
    DevStack,
    DevToken,
    devstack_deploy,
    devstack_send,
    devstack_state_read,
    devstack_state_write,
)
from demo.management.commands.localchain import _lifi_simulator

USDC = 10**6


@pytest.fixture(scope="module")
def fresh_chain() -> Iterator[LocalChain]:
    chain = LocalChain()
    try:
        yield chain
    finally:
        chain.stop()


@pytest.fixture(scope="module")
def stack(fresh_chain: LocalChain) -> DevStack:
    return devstack_deploy(fresh_chain)


def test_the_developer_account_is_funded_with_eth_usdc_and_usdt(
    fresh_chain: LocalChain, stack: DevStack
) -> None:
    assert Account.from_key(stack.developer_key).address == stack.developer_address == DEVELOPER_ADDRESS
    assert fresh_chain.w3.eth.get_balance(Web3.to_checksum_address(DEVELOPER_ADDRESS)) == 100 * 10**18
    assert stack.tokens.keys() == {"USDC", "USDT"}
    for token in stack.tokens.values():
        assert token.decimals == 6
        assert fresh_chain.token_balance(token.address, DEVELOPER_ADDRESS) == 100_000 * USDC


def test_the_router_pays_usdc_from_its_liquidity_at_the_dev_rates(
    fresh_chain: LocalChain, stack: DevStack
) -> None:
    router = fresh_chain.contract("TestSwapRouter", stack.router)

    assert router.functions.outputToken().call() == stack.tokens["USDC"].address
    assert fresh_chain.token_balance(stack.tokens["USDC"].address, stack.router) == 10_000_000 * USDC
    assert router.functions.rateE18(stack.tokens["USDT"].address).call() == 999 * 10**15
    assert router.functions.rateE18(NATIVE_COIN).call() == 3000 * USDC


def test_every_fresh_start_deploys_at_the_same_addresses(stack: DevStack) -> None:
    other = LocalChain()
    try:
        again = devstack_deploy(other)
    finally:
        other.stop()

    assert again.tokens == stack.tokens
    assert again.router == stack.router
    assert again.chain_id == stack.chain_id


def test_devstack_send_moves_tokens_and_eth_from_the_developer_over_rpc(
    fresh_chain: LocalChain, stack: DevStack
) -> None:
    recipient = Account.create().address

    usdc_tx = devstack_send(stack=stack, to=recipient.lower(), symbol="USDC", amount=Decimal("100.5"))
    devstack_send(stack=stack, to=recipient, symbol="ETH", amount=Decimal("0.25"))

    assert fresh_chain.token_balance(stack.tokens["USDC"].address, recipient) == 100_500_000
    assert fresh_chain.w3.eth.get_balance(recipient) == 25 * 10**16
    receipt = fresh_chain.w3.eth.get_transaction_receipt(HexStr(usdc_tx))
    assert receipt["from"] == DEVELOPER_ADDRESS


def test_devstack_send_refuses_more_decimals_than_the_token_has(stack: DevStack) -> None:
    with pytest.raises(ValueError, match="at most 6 decimals"):
        devstack_send(stack=stack, to=Account.create().address, symbol="USDT", amount=Decimal("0.0000001"))


def test_the_state_file_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "var" / "localchain.json"
    first = DevStack(
        rpc_url="http://127.0.0.1:8545",
        chain_id=1,
        tokens={"USDC": DevToken(address="0x" + "11" * 20, decimals=6)},
        router="0x" + "22" * 20,
        developer_address=DEVELOPER_ADDRESS,
        developer_key=DEVELOPER_KEY,
    )
    second = DevStack(**{**first.__dict__, "lifi_url": "http://127.0.0.1:8546"})

    devstack_state_write(first, path)
    devstack_state_write(second, path)

    assert devstack_state_read(path) == second
    assert [p.name for p in path.parent.iterdir()] == ["localchain.json"]


def test_the_state_file_lives_under_var_dir() -> None:
    assert STATE_FILE == settings.VAR_DIR / "localchain.json"


def test_the_lifi_simulator_is_started_on_the_stack_when_installed(
    stack: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    class FakeSimulator:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setitem(
        sys.modules, "demo.lifi_simulator", types.SimpleNamespace(LifiSimulator=FakeSimulator)
    )

    assert isinstance(_lifi_simulator(stack, 8546), FakeSimulator)
    assert made == [
        {
            "rpc_url": stack.rpc_url,
            "router": stack.router,
            "output_token": stack.tokens["USDC"].address,
            "output_decimals": 6,
            "port": 8546,
        }
    ]


def test_localchain_serves_until_sigterm_and_localchain_send_uses_it(tmp_path: Path) -> None:
    state_file = tmp_path / "localchain.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "localchain",
            "--port=0",
            "--lifi-port=0",
            "--block-seconds=0.2",
            f"--state-file={state_file}",
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        stack = devstack_state_read(state_file)
        recipient = Account.create().address
        over_http = Web3(Web3.HTTPProvider(stack.rpc_url))
        first_block = over_http.eth.block_number

        call_command("localchain_send", f"--state-file={state_file}", f"--to={recipient}", "--amount=60")
        # The command the banner prints, in a newcomer's second terminal: no Django settings, no Redis.
        bare_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "demo.localchain.send",
                f"--state-file={state_file}",
                f"--to={recipient}",
                "--amount=40",
            ],
            check=False,
            cwd=settings.BASE_DIR,
            env=bare_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip().startswith("0x") and len(sent.stdout.strip()) == 66

        usdc = over_http.eth.contract(
            address=Web3.to_checksum_address(stack.tokens["USDC"].address),
            abi=[
                {
                    "type": "function",
                    "name": "balanceOf",
                    "stateMutability": "view",
                    "inputs": [{"name": "a", "type": "address"}],
                    "outputs": [{"name": "", "type": "uint256"}],
                }
            ],
        )
        assert usdc.functions.balanceOf(recipient).call() == 100 * USDC
        time.sleep(0.5)
        assert over_http.eth.block_number >= first_block + 2  # the send, and timed blocks
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)

    assert process.returncode == 0, output
    assert stack.rpc_url in output
    assert DEVELOPER_KEY in output
    assert "DEVELOPMENT ONLY" in output
    assert "demo.localchain.send" in output
    assert not state_file.exists()


def test_localchain_send_without_a_running_chain_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no local chain is running"):
        call_command(
            "localchain_send",
            f"--state-file={tmp_path / 'none.json'}",
            f"--to={DEVELOPER_ADDRESS}",
            "--amount=1",
        )
