"""LifiSwapProvider against the LI-FI simulator backed by the local chain and its swap router.

The quote's transaction is sent as LI-FI's caller would (approve first for an ERC-20), and
the status follows the chain: pending while the pretend bridge waits, then done with what
the router paid out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress, HexStr
from web3.types import TxParams, Wei

from demo.lifi_simulator import LifiSimulator
from demo.localchain.chain import NATIVE_COIN, LocalChain
from providers.base import SwapQuote
from providers.errors import ProviderError
from providers.swaps.lifi.adapter import LifiSwapProvider

USDC = 10**6
ONE_ETH = 10**18
ETH_RATE_E18 = 3000 * USDC  # 1 ETH (1e18 wei) -> 3000 USDC (3000e6): 3e-9 per wei, x1e18
USDT_RATE_E18 = 999 * 10**15  # 1 USDT -> 0.999 USDC
DELAY_SECONDS = 0.6


@dataclass(frozen=True)
class Setup:
    chain: LocalChain
    usdc: ChecksumAddress
    usdt: ChecksumAddress
    router: ChecksumAddress
    simulator: LifiSimulator
    provider: LifiSwapProvider


@pytest.fixture(scope="module")
def setup(local_chain: LocalChain) -> Iterator[Setup]:
    usdc = local_chain.deploy_token("USDC", 6, 10_000_000 * USDC)
    usdt = local_chain.deploy_token("USDT", 6, 10_000_000 * USDC)
    router = local_chain.deploy_swap_router(usdc)
    local_chain.transfer_token(usdc, local_chain.deployer, router, 1_000_000 * USDC)
    local_chain.set_swap_rate(router, NATIVE_COIN, ETH_RATE_E18)
    local_chain.set_swap_rate(router, usdt, USDT_RATE_E18)
    simulator = LifiSimulator(local_chain.rpc_url, router, usdc, delay_seconds=DELAY_SECONDS)
    provider = LifiSwapProvider(base_url=simulator.start(), timeout="5", backoff_seconds="0.01")
    yield Setup(local_chain, usdc, usdt, router, simulator, provider)
    provider.close()
    simulator.stop()


def sender(setup: Setup, usdt_raw: int = 0) -> ChecksumAddress:
    """A funded account of the chain (1,000,000 ETH), given ``usdt_raw`` USDT."""
    address = setup.chain.accounts[1].address
    if usdt_raw:
        setup.chain.transfer_token(setup.usdt, setup.chain.deployer, address, usdt_raw)
    return address


def quote(
    setup: Setup, from_token: str, amount: int, sent_by: str, recipient: str, slippage: str
) -> SwapQuote:
    chain_id = setup.chain.chain_id
    return setup.provider.quote(
        from_chain_id=chain_id,
        from_token=from_token,
        from_amount_raw=amount,
        from_address=sent_by,
        to_chain_id=chain_id,
        to_token=setup.usdc,
        to_address=recipient,
        slippage=Decimal(slippage),
    )


def send(setup: Setup, sent_by: str, swap: SwapQuote) -> str:
    """Send the quote's transaction as is; mined at once (failed or not)."""
    transaction: TxParams = {
        "from": sent_by,
        "to": swap.transaction.to,
        "data": HexStr(swap.transaction.data),
        "value": Wei(swap.transaction.value),
    }
    if swap.transaction.gas_limit is not None:
        transaction["gas"] = swap.transaction.gas_limit
    tx_hash = setup.chain.w3.eth.send_transaction(transaction)
    setup.chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5)
    return "0x" + bytes(tx_hash).hex()


def test_a_native_coin_quote_is_a_swap_call_paying_the_value_with_no_approval(setup: Setup) -> None:
    recipient = Account.create().address

    got = quote(setup, NATIVE_COIN, ONE_ETH // 10, sender(setup), recipient, "0.01")

    assert (got.from_token, got.to_token, got.to_address) == (NATIVE_COIN, setup.usdc, recipient)
    assert (got.to_amount_raw, got.to_amount_min_raw) == (300 * USDC, 297 * USDC)
    assert got.slippage == Decimal("0.01")
    assert got.approval_address is None
    assert (got.transaction.chain_id, got.transaction.to) == (setup.chain.chain_id, setup.router)
    assert got.transaction.value == ONE_ETH // 10
    assert (got.from_amount_usd, got.to_amount_usd) == (Decimal("300.00"), Decimal("300.00"))
    assert got.fee_costs_usd == Decimal("0.75") and got.gas_costs_usd > 0
    assert got.raw["transactionRequest"]["to"] == setup.router


def test_an_erc20_quote_needs_approval_of_the_router_and_sends_no_value(setup: Setup) -> None:
    got = quote(setup, setup.usdt, 100 * USDC, sender(setup), Account.create().address, "0.005")

    assert got.approval_address == setup.router
    assert got.transaction.value == 0
    assert (got.to_amount_raw, got.to_amount_min_raw) == (99_900_000, 99_400_500)
    assert setup.simulator.requests[-1][1]["slippage"] == "0.005"


def test_a_native_swap_is_pending_for_a_while_then_done_with_the_amount_received(setup: Setup) -> None:
    sent_by, recipient = sender(setup), Account.create().address
    swap = quote(setup, NATIVE_COIN, ONE_ETH // 100, sent_by, recipient, "0.005")
    tx_hash = send(setup, sent_by, swap)
    chain_id = setup.chain.chain_id

    polls = [
        setup.provider.status(tx_hash=tx_hash, from_chain_id=chain_id, to_chain_id=chain_id) for _ in range(3)
    ]
    time.sleep(DELAY_SECONDS)
    done = setup.provider.status(tx_hash=tx_hash, from_chain_id=chain_id, to_chain_id=chain_id)

    assert [(p.status, p.substatus) for p in polls] == [("pending", "WAIT_DESTINATION_TRANSACTION")] * 3
    assert all(p.sending_tx_hash == tx_hash and p.received_amount_raw is None for p in polls)
    assert (done.status, done.substatus) == ("done", "COMPLETED")
    assert (done.received_amount_raw, done.received_token, done.received_chain_id) == (
        30 * USDC,
        setup.usdc,
        chain_id,
    )
    assert done.receiving_tx_hash == tx_hash
    assert setup.chain.token_balance(setup.usdc, recipient) == 30 * USDC


def test_an_erc20_swap_after_approving_the_quoted_spender_completes(setup: Setup) -> None:
    sent_by, recipient = sender(setup, usdt_raw=50 * USDC), Account.create().address
    swap = quote(setup, setup.usdt, 50 * USDC, sent_by, recipient, "0.005")
    assert swap.approval_address is not None
    setup.chain.approve(setup.usdt, sent_by, swap.approval_address, swap.from_amount_raw)
    tx_hash = send(setup, sent_by, swap)
    chain_id = setup.chain.chain_id

    deadline = time.monotonic() + 5
    got = setup.provider.status(tx_hash=tx_hash, from_chain_id=chain_id, to_chain_id=chain_id)
    while got.status == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
        got = setup.provider.status(tx_hash=tx_hash, from_chain_id=chain_id, to_chain_id=chain_id)

    assert (got.status, got.received_amount_raw) == ("done", 49_950_000)
    assert setup.chain.token_balance(setup.usdc, recipient) == 49_950_000


def test_a_swap_that_reverts_is_failed_with_a_substatus(setup: Setup) -> None:
    """The rate drops between quote and send, so the router refuses the quoted minimum."""
    sent_by = sender(setup)
    swap = quote(setup, NATIVE_COIN, ONE_ETH // 100, sent_by, Account.create().address, "0.005")
    setup.chain.set_swap_rate(setup.router, NATIVE_COIN, ETH_RATE_E18 // 2)
    try:
        tx_hash = send(setup, sent_by, swap)
    finally:
        setup.chain.set_swap_rate(setup.router, NATIVE_COIN, ETH_RATE_E18)
    chain_id = setup.chain.chain_id

    got = setup.provider.status(tx_hash=tx_hash, from_chain_id=chain_id, to_chain_id=chain_id)

    assert (got.status, got.substatus) == ("failed", "UNKNOWN_FAILED_ERROR")
    assert got.sending_tx_hash == tx_hash
    assert got.received_amount_raw is None


def test_a_hash_the_chain_does_not_know_is_not_found(setup: Setup) -> None:
    chain_id = setup.chain.chain_id

    got = setup.provider.status(tx_hash="0x" + "42" * 32, from_chain_id=chain_id, to_chain_id=chain_id)

    assert got.status == "not_found"


def test_a_token_without_a_rate_has_no_route(setup: Setup) -> None:
    dai = setup.chain.deploy_token("DAI", 18, 10**24)

    with pytest.raises(ProviderError) as caught:
        quote(setup, dai, ONE_ETH, sender(setup), Account.create().address, "0.005")

    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (404, 1002, False)


def test_the_health_check_passes_against_the_simulated_chain_list(setup: Setup) -> None:
    setup.provider.health_check()

    assert setup.simulator.requests[-1] == ("/chains", {"chainTypes": "EVM"})
