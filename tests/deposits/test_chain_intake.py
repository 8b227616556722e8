"""Deposits found on a real local EVM: the scanner, reported hashes, confirmations and reorgs.

Everything goes through JSON-RPC to the local chain exactly as to a real node; the user's
deposit address is an MPC wallet of the ``local`` signer.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from web3 import Web3

from accounts.services.wallets import wallet_mpc_create
from conftest import bearer_client
from demo.localchain.chain import LocalChain, load_artifact
from deposits import errors
from deposits.models import Deposit, DepositStatus, DepositTransition
from deposits.services import intake, machine
from ledger.checks import ledger_check
from marqetfi.core.models import Event
from tests.deposits.chain_setup import CONFIRMATIONS, DepositChain, deposit_chain_configured
from tests.ledger.factories import new_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(local_chain: LocalChain, settings: Any) -> Iterator[DepositChain]:
    settings.DEPOSIT_DROP_AFTER_SECONDS = 0  # a vanished transaction is dropped at the next look
    with deposit_chain_configured(local_chain) as configured:
        yield configured


@pytest.fixture
def trader(setup: DepositChain) -> Any:
    user = new_user()
    wallet, _ = wallet_mpc_create(user=user, provider="local")
    intake.deposits_scan_chain(chain_id=setup.chain_id)  # the cursor starts here
    return user, wallet


def _settle(deposit: Deposit) -> Deposit:
    """Run every due step now (what the worker does when beat hands the deposit over)."""
    for _ in range(10):
        Deposit.objects.filter(pk=deposit.pk).update(next_action_at=deposit.created_at)
        if machine.deposit_run_steps(deposit_id=deposit.pk) is None:
            break
    deposit.refresh_from_db()
    return deposit


def _available(user: Any) -> Decimal:
    body = bearer_client(user).get("/api/v1/account").json()
    return Decimal(body["available"])


def test_an_erc20_deposit_is_found_by_the_scanner_confirmed_and_credited_once(setup, trader):
    user, wallet = trader
    tx_hash = setup.chain.transfer_token(setup.usdc, setup.chain.deployer, wallet.address, 125_500_000)

    intake.deposits_scan_chain(chain_id=setup.chain_id)
    deposit = Deposit.objects.get(user=user)
    assert (deposit.tx_hash, deposit.token_symbol, deposit.amount) == (tx_hash, "USDC", Decimal("125.5"))
    assert deposit.status == DepositStatus.DETECTED and deposit.source == "scan"

    deposit = _settle(deposit)
    assert deposit.status == DepositStatus.CONFIRMING  # 1 of 3 confirmations
    assert _available(user) == 0

    setup.chain.mine(CONFIRMATIONS - 1)
    deposit = _settle(deposit)
    assert deposit.status == DepositStatus.COMPLETED
    assert deposit.credited_amount == Decimal("125.5")
    assert _available(user) == Decimal("125.5")

    # Scanning the same blocks again (the overlap below the cursor) and advancing again change nothing.
    intake.deposits_scan_chain(chain_id=setup.chain_id)
    _settle(deposit)
    assert Deposit.objects.filter(user=user).count() == 1
    assert _available(user) == Decimal("125.5")
    assert ledger_check() == []
    types = list(Event.objects.filter(user=user, type__startswith="deposit.").values_list("type", flat=True))
    assert types == ["deposit.received", "deposit.confirmed", "deposit.completed"]
    history = list(DepositTransition.objects.filter(deposit=deposit).values_list("to_status", flat=True))
    assert history == ["detected", "confirming", "completed"]


def test_a_native_deposit_is_found_by_the_scanner(setup, trader):
    user, wallet = trader
    tx_hash = setup.chain.send_eth(setup.chain.deployer, wallet.address, 25 * 10**16)

    result = intake.deposits_scan_chain(chain_id=setup.chain_id)
    assert result is not None and result.created == 1
    deposit = Deposit.objects.get(user=user)
    assert (deposit.tx_hash, deposit.log_index, deposit.token_symbol) == (tx_hash, -1, "ETH")
    assert deposit.amount == Decimal("0.25") and deposit.is_native
    setup.chain.mine(CONFIRMATIONS)
    deposit = _settle(deposit)
    # Not the settlement token: it waits for a swap (no swap provider reachable in this test).
    assert deposit.status == DepositStatus.QUOTING
    assert deposit.credited_amount is None and _available(user) == 0


def test_a_reported_hash_is_verified_and_is_the_same_deposit_the_scanner_finds(setup, trader):
    user, wallet = trader
    tx_hash = setup.chain.transfer_token(setup.usdc, setup.chain.deployer, wallet.address, 40_000_000)
    setup.chain.mine(CONFIRMATIONS)

    deposits, created = intake.deposit_report(user=user, chain_id=setup.chain_id, tx_hash=tx_hash)
    assert created and len(deposits) == 1 and deposits[0].source == "report"
    again, created_again = intake.deposit_report(
        user=user, chain_id=setup.chain_id, tx_hash=tx_hash.upper().replace("0X", "0x")
    )
    assert not created_again and again[0].pk == deposits[0].pk

    intake.deposits_scan_chain(chain_id=setup.chain_id)
    assert Deposit.objects.filter(user=user).count() == 1
    deposit = _settle(deposits[0])
    assert deposit.status == DepositStatus.COMPLETED and _available(user) == Decimal(40)
    assert ledger_check() == []


def test_a_reported_unconfirmed_transaction_waits_for_its_confirmations(setup, trader):
    user, wallet = trader
    tx_hash = setup.chain.transfer_token(setup.usdc, setup.chain.deployer, wallet.address, 7_000_000)
    (deposit,), _ = intake.deposit_report(user=user, chain_id=setup.chain_id, tx_hash=tx_hash)
    deposit = _settle(deposit)
    assert deposit.status == DepositStatus.CONFIRMING and deposit.confirmations == 1
    assert _available(user) == 0
    setup.chain.mine(CONFIRMATIONS)
    assert _settle(deposit).status == DepositStatus.COMPLETED
    assert _available(user) == Decimal(7)


def _reverted_transfer(chain: LocalChain, token: str, recipient: str) -> str:
    """A mined transaction that reverts: a transfer from an account holding none of the token."""
    sender = chain.accounts[5].address
    contract = chain.w3.eth.contract(
        address=Web3.to_checksum_address(token), abi=load_artifact("TestToken")["abi"]
    )
    tx_hash = contract.functions.transfer(recipient, 1_000).transact({"from": sender, "gas": 100_000})
    assert chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 0
    return Web3.to_hex(tx_hash)


def test_refused_reports_have_clear_codes_and_record_nothing(setup, trader):
    user, wallet = trader
    other = new_user()
    other_wallet, _ = wallet_mpc_create(user=other, provider="local")
    to_other = setup.chain.transfer_token(setup.usdc, setup.chain.deployer, other_wallet.address, 5_000_000)
    reverted = _reverted_transfer(setup.chain, setup.usdc, wallet.address)
    unknown_token = setup.chain.deploy_token("XYZ", 18, 10**24)
    unsupported = setup.chain.transfer_token(unknown_token, setup.chain.deployer, wallet.address, 10**18)

    cases = [
        (setup.chain_id, to_other, errors.NotYourDepositAddress),
        (setup.chain_id, reverted, errors.TransactionFailed),
        (setup.chain_id, unsupported, errors.UnsupportedToken),
        (setup.chain_id, "0x" + "ab" * 32, errors.TransactionNotFound),
        (setup.chain_id, "0x" + "ab" * 31, errors.InvalidTransactionHash),
        (setup.chain_id, "not-a-hash", errors.InvalidTransactionHash),
        (999_999_999, to_other, errors.UnsupportedChain),
    ]
    for chain_id, tx_hash, refusal in cases:
        with pytest.raises(refusal):
            intake.deposit_report(user=user, chain_id=chain_id, tx_hash=tx_hash)
    assert not Deposit.objects.filter(user=user).exists()


def test_a_transfer_reorganised_away_below_the_confirmation_depth_is_never_credited(setup, trader):
    user, wallet = trader
    snapshot = setup.chain.snapshot()
    setup.chain.transfer_token(setup.usdc, setup.chain.deployer, wallet.address, 9_000_000)
    intake.deposits_scan_chain(chain_id=setup.chain_id)
    deposit = _settle(Deposit.objects.get(user=user))
    assert deposit.status == DepositStatus.CONFIRMING

    setup.chain.reorg(snapshot, new_blocks=CONFIRMATIONS + 2)  # the transfer's block is replaced
    intake.deposits_scan_chain(chain_id=setup.chain_id)
    deposit = _settle(deposit)
    deposit = _settle(deposit)
    assert deposit.status == DepositStatus.DROPPED
    assert deposit.credited_amount is None and _available(user) == 0
    assert Deposit.objects.filter(user=user).count() == 1
    assert ledger_check() == []


def test_a_transfer_mined_again_after_a_reorg_is_credited_once(setup, trader):
    user, wallet = trader
    sender = setup.chain.accounts[3]
    setup.chain.transfer_token(setup.usdc, setup.chain.deployer, sender.address, 50_000_000)
    contract = setup.chain.w3.eth.contract(address=setup.usdc, abi=load_artifact("TestToken")["abi"])
    unsigned = contract.functions.transfer(wallet.address, 11_000_000).build_transaction(
        {
            "from": sender.address,
            "nonce": setup.chain.w3.eth.get_transaction_count(sender.address),
            "gas": 100_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "chainId": setup.chain_id,
        }
    )
    raw = sender.sign_transaction(unsigned).raw_transaction
    snapshot = setup.chain.snapshot()
    tx_hash = Web3.to_hex(setup.chain.w3.eth.send_raw_transaction(raw))
    intake.deposits_scan_chain(chain_id=setup.chain_id)
    deposit = _settle(Deposit.objects.get(user=user))
    assert deposit.status == DepositStatus.CONFIRMING

    setup.chain.reorg(snapshot, new_blocks=1)
    assert Web3.to_hex(setup.chain.w3.eth.send_raw_transaction(raw)) == tx_hash  # mined again, later
    setup.chain.mine(CONFIRMATIONS)
    intake.deposits_scan_chain(chain_id=setup.chain_id)
    deposit = _settle(deposit)
    assert deposit.status == DepositStatus.COMPLETED
    assert Deposit.objects.filter(user=user).count() == 1
    assert _available(user) == Decimal(11)
    assert ledger_check() == []


def test_a_first_scan_starts_at_the_configured_block_and_misses_nothing_sent_before(local_chain, settings):
    start = local_chain.w3.eth.block_number + 1
    with deposit_chain_configured(local_chain, scan_from_block=start) as setup:
        user = new_user()
        wallet, _ = wallet_mpc_create(user=user, provider="local")
        setup.chain.transfer_token(setup.usdc, setup.chain.deployer, wallet.address, 2_000_000)
        setup.chain.mine(10)  # long before the scanner's first run
        result = intake.deposits_scan_chain(chain_id=setup.chain_id)
        assert result is not None and result.from_block <= start and result.created == 1
        assert Deposit.objects.get(user=user).amount == Decimal(2)
