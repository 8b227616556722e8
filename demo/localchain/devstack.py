"""The development stack on the local chain under ``make run``: test USDC and USDT, a swap router
standing in for LI-FI's, and a funded developer account.

``devstack_deploy`` sets it up on a fresh ``LocalChain``; the ``localchain`` management command
writes the result to ``STATE_FILE`` (``devstack_state_write``) for the rest of ``make run`` to read
(``devstack_state_read``). Deployment is deterministic: on a fresh chain the same deployer deploys
in the same order, so every start gives the same addresses and a configuration made from an
earlier state file stays valid after a restart.

This module does not import eth-tester (a development dependency): the launcher and ``seed_demo``
can import ``STATE_FILE`` and read the state without the chain's own dependencies.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account import Account
from web3 import Web3
from web3.middleware import SignAndSendRawMiddlewareBuilder
from web3.types import TxParams, Wei

if TYPE_CHECKING:
    from demo.localchain.chain import LocalChain

# The project's var/ (settings.VAR_DIR), found without loading Django: ``demo.localchain.send``
# runs in a newcomer's second terminal, where no REDIS_URL or settings are set.
STATE_FILE: Path = Path(__file__).resolve().parents[2] / "var" / "localchain.json"
"""Where ``manage.py localchain`` describes the running chain (JSON of ``DevStack``); gone when it stops."""

# Hardhat's and Anvil's account #0: its key is published in their documentation, so anything
# sent to this address on a real network is swept at once. Development only.
DEVELOPER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEVELOPER_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

NATIVE_SYMBOL = "ETH"
NATIVE_DECIMALS = 18
OUTPUT_SYMBOL = "USDC"
"""The token the swap router pays out (what deposits credit)."""

TOKEN_DECIMALS = {"USDC": 6, "USDT": 6}
TOKEN_SUPPLY = 1_000_000_000  # whole tokens, minted to the chain's deployer
ROUTER_LIQUIDITY = 10_000_000  # whole USDC the router can pay out
DEVELOPER_ETH = 100
DEVELOPER_TOKENS = 100_000  # whole tokens of each test token
# Output base units per input base unit, x1e18 (see TestSwapRouter.rateE18).
USDT_TO_USDC_RATE_E18 = 999 * 10**15  # 1:1 minus 0.1 % (both have 6 decimals)
ETH_TO_USDC_RATE_E18 = 3000 * 10**6  # 3000 USDC per ETH: 3000e6 USDC units per 1e18 wei, x1e18


@dataclass(frozen=True)
class DevToken:
    address: str
    decimals: int


@dataclass(frozen=True)
class DevStack:
    """What runs on the local chain and how to reach it; the JSON of the state file."""

    rpc_url: str
    chain_id: int
    tokens: dict[str, DevToken]
    router: str
    developer_address: str
    developer_key: str
    lifi_url: str | None = None
    native_symbol: str = field(default=NATIVE_SYMBOL)
    # The platform's own accounts on the chain, apart from the developer's (what the developer
    # sends must count as deposits): the gas station paying users' first gas, and the
    # collection address swaps deliver to.
    gas_station_key: str = ""
    collection_address: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DevStack:
        data: dict[str, Any] = json.loads(text)
        data["tokens"] = {symbol: DevToken(**token) for symbol, token in data["tokens"].items()}
        return cls(**data)


def devstack_deploy(chain: LocalChain) -> DevStack:
    """Deploy the development stack on a fresh ``chain`` (see the module docstring).

    The router pays test USDC from its own balance, funded here; rates: USDT -> USDC 1:1
    minus 0.1 %, ETH -> USDC 3000 USDC per ETH. The developer account gets 100 ETH and
    100,000 of each test token.
    """
    from demo.localchain.chain import NATIVE_COIN  # the caller has the chain, so eth-tester is there

    tokens: dict[str, DevToken] = {}
    for symbol, decimals in TOKEN_DECIMALS.items():
        address = chain.deploy_token(symbol, decimals, TOKEN_SUPPLY * 10**decimals, name=f"Test {symbol}")
        tokens[symbol] = DevToken(address=address, decimals=decimals)
    usdc, usdt = tokens[OUTPUT_SYMBOL], tokens["USDT"]
    router = chain.deploy_swap_router(usdc.address)
    chain.transfer_token(usdc.address, chain.deployer, router, ROUTER_LIQUIDITY * 10**usdc.decimals)
    chain.set_swap_rate(router, usdt.address, USDT_TO_USDC_RATE_E18)
    chain.set_swap_rate(router, NATIVE_COIN, ETH_TO_USDC_RATE_E18)
    chain.send_eth(chain.deployer, DEVELOPER_ADDRESS, DEVELOPER_ETH * 10**NATIVE_DECIMALS)
    for token in tokens.values():
        chain.transfer_token(
            token.address, chain.deployer, DEVELOPER_ADDRESS, DEVELOPER_TOKENS * 10**token.decimals
        )
    return DevStack(
        rpc_url=chain.rpc_url,
        chain_id=chain.chain_id,
        tokens=tokens,
        router=router,
        developer_address=DEVELOPER_ADDRESS,
        developer_key=DEVELOPER_KEY,
        gas_station_key="0x" + bytes(chain.accounts[1].key).hex(),
        collection_address=chain.accounts[2].address,
    )


def devstack_state_write(stack: DevStack, path: Path = STATE_FILE) -> None:
    """Write the state file atomically: a reader sees the previous file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(stack.to_json())
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


def devstack_state_read(path: Path = STATE_FILE) -> DevStack:
    """The running chain's stack; ``FileNotFoundError`` when no local chain is running."""
    return DevStack.from_json(path.read_text())


def devstack_base_units(stack: DevStack, symbol: str, amount: Decimal) -> int:
    """``amount`` whole ``symbol`` in base units; more decimals than the token has is a ``ValueError``."""
    decimals = NATIVE_DECIMALS if symbol == stack.native_symbol else stack.tokens[symbol].decimals
    base_units = amount.scaleb(decimals)
    if amount <= 0 or base_units != base_units.to_integral_value():
        raise ValueError(f"{amount:f} is not a positive amount of {symbol} with at most {decimals} decimals")
    return int(base_units)


def devstack_send(*, stack: DevStack, to: str, symbol: str, amount: Decimal, timeout: float = 30.0) -> str:
    """Send ``amount`` whole ``symbol`` (a test token or the native coin) from the developer account
    to ``to`` over the chain's JSON-RPC, like a wallet would; returns the mined transaction's hash.

    Raises ``KeyError`` for an unknown symbol, ``ValueError`` for a bad amount or address.
    """
    if symbol != stack.native_symbol and symbol not in stack.tokens:
        raise KeyError(symbol)
    if not Web3.is_address(to):
        raise ValueError(f"{to!r} is not an address")
    recipient = Web3.to_checksum_address(to)
    base_units = devstack_base_units(stack, symbol, amount)
    account = Account.from_key(stack.developer_key)
    w3 = Web3(Web3.HTTPProvider(stack.rpc_url, request_kwargs={"timeout": timeout}))
    w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
    tx: TxParams = {"from": account.address}
    if symbol == stack.native_symbol:
        tx.update({"to": recipient, "value": Wei(base_units)})
    else:
        token = stack.tokens[symbol]
        erc20 = w3.eth.contract(address=Web3.to_checksum_address(token.address), abi=_TRANSFER_ABI)
        tx = erc20.functions.transfer(recipient, base_units).build_transaction(tx)
    tx_hash = w3.eth.send_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.to_0x_hex()} reverted")
    return tx_hash.to_0x_hex()


_TRANSFER_ABI = [
    {
        "type": "function",
        "name": "transfer",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    }
]
