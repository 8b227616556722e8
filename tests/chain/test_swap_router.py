"""TestSwapRouter, the local chain's stand-in for LI-FI's diamond: what a sender and a recipient observe."""

from __future__ import annotations

import re

import pytest
from eth_account import Account
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt, Wei

from demo.localchain.chain import NATIVE_COIN, LocalChain

USDC = 10**6
ONE_ETH = 10**18
TRANSFER_ID = bytes.fromhex("ab" * 32)


@pytest.fixture
def usdc(local_chain: LocalChain) -> ChecksumAddress:
    return local_chain.deploy_token("USDC", 6, 10_000_000 * USDC)


@pytest.fixture
def router(local_chain: LocalChain, usdc: ChecksumAddress) -> Contract:
    address = local_chain.deploy_swap_router(usdc)
    local_chain.transfer_token(usdc, local_chain.deployer, address, 1_000_000 * USDC)
    return local_chain.contract("TestSwapRouter", address)


def over_http(local_chain: LocalChain, contract: Contract) -> Contract:
    """The contract as the application sees it: through JSON-RPC, where a revert is a ContractLogicError."""
    return Web3(Web3.HTTPProvider(local_chain.rpc_url)).eth.contract(
        address=contract.address, abi=contract.abi
    )


def mined(local_chain: LocalChain, tx_hash: HexBytes) -> TxReceipt:
    receipt = local_chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5)
    assert receipt["status"] == 1
    return receipt


def test_an_erc20_swap_after_approve_pays_the_recipient_at_the_rate(
    local_chain: LocalChain, usdc: ChecksumAddress, router: Contract
) -> None:
    usdt = local_chain.deploy_token("USDT", 6, 1_000 * USDC)
    local_chain.set_swap_rate(router.address, usdt, 999 * 10**15)  # 1:1 minus 0.1 %
    local_chain.approve(usdt, local_chain.deployer, router.address, 100 * USDC)
    recipient = Account.create().address

    to_amount = router.functions.swap(usdt, 100 * USDC, recipient, 99 * USDC, TRANSFER_ID).call(
        {"from": local_chain.deployer}
    )
    mined(
        local_chain,
        router.functions.swap(usdt, 100 * USDC, recipient, 99 * USDC, TRANSFER_ID).transact(
            {"from": local_chain.deployer}
        ),
    )

    assert to_amount == 99_900_000
    assert local_chain.token_balance(usdc, recipient) == 99_900_000
    assert local_chain.token_balance(usdt, router.address) == 100 * USDC
    assert local_chain.token_balance(usdt, local_chain.deployer) == 900 * USDC


def test_an_erc20_swap_without_approve_reverts(local_chain: LocalChain, router: Contract) -> None:
    usdt = local_chain.deploy_token("USDT", 6, 1_000 * USDC)
    local_chain.set_swap_rate(router.address, usdt, 10**18)

    with pytest.raises(ContractLogicError, match="insufficient allowance"):
        over_http(local_chain, router).functions.swap(
            usdt, USDC, Account.create().address, 0, TRANSFER_ID
        ).transact({"from": local_chain.deployer})


def test_a_native_swap_takes_the_value_sent(
    local_chain: LocalChain, usdc: ChecksumAddress, router: Contract
) -> None:
    local_chain.set_swap_rate(router.address, NATIVE_COIN, 3000 * USDC)  # 3000 USDC per ETH
    recipient = Account.create().address

    mined(
        local_chain,
        router.functions.swap(NATIVE_COIN, ONE_ETH // 2, recipient, 0, TRANSFER_ID).transact(
            {"from": local_chain.deployer, "value": Wei(ONE_ETH // 2)}
        ),
    )

    assert local_chain.token_balance(usdc, recipient) == 1500 * USDC
    assert local_chain.w3.eth.get_balance(router.address) == ONE_ETH // 2


def test_a_native_swap_whose_value_differs_from_the_amount_reverts(
    local_chain: LocalChain, router: Contract
) -> None:
    local_chain.set_swap_rate(router.address, NATIVE_COIN, 3000 * USDC)

    with pytest.raises(ContractLogicError, match=re.escape("msg.value != fromAmount")):
        over_http(local_chain, router).functions.swap(
            NATIVE_COIN, ONE_ETH, Account.create().address, 0, TRANSFER_ID
        ).transact({"from": local_chain.deployer, "value": Wei(ONE_ETH // 2)})


def test_a_swap_below_min_out_reverts_with_slippage(local_chain: LocalChain, router: Contract) -> None:
    usdt = local_chain.deploy_token("USDT", 6, 1_000 * USDC)
    local_chain.set_swap_rate(router.address, usdt, 999 * 10**15)
    local_chain.approve(usdt, local_chain.deployer, router.address, 100 * USDC)

    with pytest.raises(ContractLogicError, match="slippage"):
        over_http(local_chain, router).functions.swap(
            usdt, 100 * USDC, Account.create().address, 100 * USDC, TRANSFER_ID
        ).transact({"from": local_chain.deployer})
    assert local_chain.token_balance(usdt, local_chain.deployer) == 1_000 * USDC


def test_a_token_without_a_rate_has_no_route(local_chain: LocalChain, router: Contract) -> None:
    unknown = local_chain.deploy_token("UNK", 18, 10**18)
    local_chain.approve(unknown, local_chain.deployer, router.address, 10**18)

    with pytest.raises(ContractLogicError, match="no route"):
        over_http(local_chain, router).functions.swap(
            unknown, 10**18, Account.create().address, 0, TRANSFER_ID
        ).transact({"from": local_chain.deployer})


def test_swapped_names_sender_tokens_amounts_recipient_and_transfer_id(
    local_chain: LocalChain, router: Contract
) -> None:
    local_chain.set_swap_rate(router.address, NATIVE_COIN, 3000 * USDC)
    recipient = Account.create().address

    receipt = mined(
        local_chain,
        router.functions.swap(NATIVE_COIN, ONE_ETH, recipient, 0, TRANSFER_ID).transact(
            {"from": local_chain.deployer, "value": Wei(ONE_ETH)}
        ),
    )
    (event,) = router.events.Swapped().process_receipt(receipt, errors=DISCARD)

    assert event["address"] == router.address
    assert dict(event["args"]) == {
        "sender": local_chain.deployer,
        "fromToken": NATIVE_COIN,
        "fromAmount": ONE_ETH,
        "recipient": recipient,
        "toAmount": 3000 * USDC,
        "transferId": TRANSFER_ID,
    }
    # sender, fromToken and recipient are indexed: a log filter can select a recipient's swaps.
    assert receipt["logs"][-1]["topics"][3] == bytes(12) + bytes.fromhex(recipient[2:])


def test_only_the_owner_sets_rates(local_chain: LocalChain, router: Contract) -> None:
    stranger = local_chain.accounts[1].address

    with pytest.raises(ContractLogicError, match="not owner"):
        over_http(local_chain, router).functions.setRate(NATIVE_COIN, 1).transact({"from": stranger})
    assert router.functions.owner().call() == local_chain.deployer
    assert router.functions.rateE18(NATIVE_COIN).call() == 0


def test_the_router_is_reachable_over_http(local_chain: LocalChain, router: Contract) -> None:
    remote = over_http(local_chain, router)

    assert remote.functions.outputToken().call() == router.functions.outputToken().call()
