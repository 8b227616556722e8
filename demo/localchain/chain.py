"""A real EVM on loopback, reachable over HTTP JSON-RPC like any node (tests and ``make run``).

eth-tester (py-evm backend, instant mining) sits behind web3's ``EthereumTesterProvider``;
a werkzeug server on 127.0.0.1 forwards each JSON-RPC request to it and answers the way a
node does (hex quantities, ``0x`` data, geth-style revert errors), so code under test (or the
server under ``make run``) talks to it through an ordinary ``HTTPProvider``. Setup (deploys,
transfers) goes in-process through ``LocalChain.w3``.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract
from web3.datastructures import NamedElementOnion
from web3.types import RPCEndpoint, RPCResponse, TxReceipt, Wei
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
NATIVE_COIN = "0x0000000000000000000000000000000000000000"
"""What ``TestSwapRouter`` calls the chain's native coin (its ``fromToken`` for ETH)."""

logger = logging.getLogger(__name__)


def load_artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of a contract compiled from ``contracts/<name>.sol`` (see contracts/README.md)."""
    artifact: dict[str, Any] = json.loads((CONTRACTS_DIR / f"{name}.json").read_text())
    return artifact


class _SerializedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe: the server thread and the test thread take turns."""

    def __init__(self, ethereum_tester: EthereumTester) -> None:
        super().__init__(ethereum_tester)
        self.lock = threading.RLock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self.lock:
            return super().make_request(method, params)


def _to_wire(value: Any) -> Any:
    """A result as a node puts it on the wire: integers as hex quantities, bytes as 0x data."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {key: _to_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(item) for item in value]
    raise TypeError(f"cannot put {type(value).__name__} on the wire")


_QUOTED_BYTES = re.compile(r"execution reverted: (b'.*'|b\".*\")", re.DOTALL)


def _revert_error(exc: TransactionFailed) -> dict[str, Any]:
    """Geth's shape for a revert: code 3 and the reason in the message.

    eth-tester decodes an ``Error(string)`` reason and keeps only that text: ``data`` is then
    left out (web3 raises ``ContractLogicError`` from the message). A custom error (Ostium's
    ``PairNotListed``...) comes as its raw bytes, which go in ``data`` as 0x-hex, as geth
    puts them (web3 raises ``ContractCustomError`` quoting them).
    """
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, str) and (quoted := _QUOTED_BYTES.fullmatch(reason)) is not None:
        reason = ast.literal_eval(quoted.group(1))  # eth-tester's text of the raw bytes
    if isinstance(reason, bytes | bytearray):
        return {"code": 3, "message": "execution reverted", "data": "0x" + bytes(reason).hex()}
    return {"code": 3, "message": str(reason) if reason is not None else "execution reverted"}


@dataclass
class _Hold:
    skip: int
    waiting: int = 0
    gate: threading.Event = field(default_factory=threading.Event)


class JsonRpcApp:
    """WSGI app answering JSON-RPC 2.0 (single and batch requests) from a request function."""

    def __init__(self, request_fn: Callable[[RPCEndpoint, Any], RPCResponse]) -> None:
        self.request_fn = request_fn
        self._holds: dict[str, _Hold] = {}
        self._holds_lock = threading.Lock()

    def hold(self, method: str, *, skip: int = 0) -> None:
        """Keep requests for ``method`` waiting (after letting ``skip`` through) until ``release``:
        a node that has the request but has not answered yet, for crash tests."""
        with self._holds_lock:
            self._holds[method] = _Hold(skip=skip)

    def held(self, method: str) -> int:
        """How many requests for ``method`` are waiting now."""
        with self._holds_lock:
            hold = self._holds.get(method)
            return hold.waiting if hold else 0

    def release(self, method: str) -> None:
        """Let the waiting requests for ``method`` go on (they are then processed) and stop holding."""
        with self._holds_lock:
            hold = self._holds.pop(method, None)
        if hold is not None:
            hold.gate.set()

    def _wait_if_held(self, method: str) -> None:
        with self._holds_lock:
            hold = self._holds.get(method)
            if hold is None:
                return
            if hold.skip > 0:
                hold.skip -= 1
                return
            hold.waiting += 1
        hold.gate.wait(timeout=120)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            payload = json.loads(request.get_data())
        except ValueError:
            body: Any = _error_response(None, -32700, "parse error")
        else:
            if isinstance(payload, list):
                body = [self._answer(item) for item in payload] if payload else _invalid(None)
            else:
                body = self._answer(payload)
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)

    def _answer(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("method"), str):
            return _invalid(item.get("id") if isinstance(item, dict) else None)
        request_id = item.get("id")
        self._wait_if_held(item["method"])
        try:
            response = self.request_fn(RPCEndpoint(item["method"]), item.get("params", []))
        except TransactionFailed as exc:
            return {"jsonrpc": "2.0", "id": request_id, "error": _revert_error(exc)}
        except Exception as exc:  # noqa: BLE001  # a node answers every request; the error is the answer
            return _error_response(request_id, -32000, str(exc))
        if "error" in response:
            return {"jsonrpc": "2.0", "id": request_id, "error": response["error"]}
        return {"jsonrpc": "2.0", "id": request_id, "result": _to_wire(response.get("result"))}


def _error_response(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _invalid(request_id: Any) -> dict[str, Any]:
    return _error_response(request_id, -32600, "invalid request")


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LocalChain:
    """A fresh eth-tester chain with funded accounts, served on ``rpc_url`` until ``stop()``.

    ``accounts`` are the chain's funded accounts (1,000,000 ETH each) with their keys, so
    tests can also sign with them; helpers take and return checksummed addresses. Every
    transaction is mined at once, in a block of its own; ``start_block_timer`` adds empty
    blocks over time so that confirmations advance, and ``snapshot``/``reorg`` replace blocks.
    ``port`` 0 serves on a free port.
    """

    def __init__(self, port: int = 0) -> None:
        backend = PyEVMBackend()
        self._tester = EthereumTester(backend)
        self.provider = _SerializedTesterProvider(self._tester)
        self.w3 = Web3(self.provider)
        self.chain_id: int = self.w3.eth.chain_id
        self.accounts: list[LocalAccount] = [Account.from_key(key.to_bytes()) for key in backend.account_keys]
        # Only the provider's own eth-tester translation, none of Web3's client-side middleware:
        # the HTTP client brings its own.
        request_fn = self.provider.request_func(self.w3, NamedElementOnion([]))
        # Threaded: under make run the web, the worker and the swap simulator poll at once;
        # the provider's lock still lets only one request at a time into eth-tester.
        self.rpc_app = JsonRpcApp(request_fn)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, self.rpc_app, threaded=True, request_handler=_QuietRequestHandler
        )
        self.rpc_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="local-chain-rpc", daemon=True
        )
        self._thread.start()
        self._block_timer: threading.Thread | None = None
        self._block_timer_stop = threading.Event()

    def stop(self) -> None:
        self.stop_block_timer()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def start_block_timer(self, seconds: float) -> None:
        """Mine an empty block every ``seconds`` in the background until ``stop_block_timer()``.

        On a real chain blocks come without transactions; here they make confirmations advance.
        """
        if seconds <= 0:
            raise ValueError("seconds must be positive")
        self.stop_block_timer()
        self._block_timer_stop.clear()
        self._block_timer = threading.Thread(
            target=self._mine_every, args=(seconds,), name="local-chain-blocks", daemon=True
        )
        self._block_timer.start()

    def stop_block_timer(self) -> None:
        if self._block_timer is None:
            return
        self._block_timer_stop.set()
        self._block_timer.join(timeout=5)
        self._block_timer = None

    def _mine_every(self, seconds: float) -> None:
        while not self._block_timer_stop.wait(seconds):
            try:
                self.mine()
            except Exception:  # a missed block is no reason to stop the clock
                logger.exception("local chain: mining a timed block failed")

    def snapshot(self) -> int:
        """Remember the chain as it is (its latest block); ``reorg`` goes back to it."""
        with self.provider.lock:
            snapshot_id: int = self._tester.take_snapshot()
        return snapshot_id

    def reorg(self, snapshot_id: int, new_blocks: int) -> int:
        """Replace every block after ``snapshot_id`` by ``new_blocks`` empty ones.

        The transactions mined after the snapshot are gone (no receipt, not pending), and
        the blocks at their heights get other hashes. Pass at least as many blocks as were
        dropped for the usual reorg, where the new branch is as long or longer. Returns the
        new latest block number.
        """
        if new_blocks < 0:
            raise ValueError("new_blocks must not be negative")
        with self.provider.lock:
            self._tester.revert_to_snapshot(snapshot_id)
            if new_blocks:
                self._tester.mine_blocks(new_blocks)
        return int(self.w3.eth.block_number)

    @property
    def deployer(self) -> ChecksumAddress:
        return self.accounts[0].address

    def deploy_token(
        self, symbol: str, decimals: int, supply: int, name: str | None = None
    ) -> ChecksumAddress:
        """Deploy a ``TestToken``; ``supply`` is in base units and goes to ``deployer``."""
        return self._deploy("TestToken", name or f"Test {symbol}", symbol, decimals, supply)

    def deploy_contract_wallet(self, owner: str) -> ChecksumAddress:
        """Deploy a ``TestContractWallet``: EIP-1271 accepts exactly the signatures ``owner`` makes."""
        return self._deploy("TestContractWallet", Web3.to_checksum_address(owner))

    def deploy_swap_router(self, output_token: str) -> ChecksumAddress:
        """Deploy a ``TestSwapRouter`` paying out ``output_token``, owned by ``deployer``.

        It pays from its own balance: transfer it ``output_token`` liquidity, and set a rate
        per input token with ``set_swap_rate``, before swapping.
        """
        return self._deploy("TestSwapRouter", Web3.to_checksum_address(output_token))

    def set_swap_rate(self, router: str, from_token: str, rate_e18: int) -> None:
        """Set how many output base units one base unit of ``from_token`` buys, times 1e18.

        ``from_token`` ``NATIVE_COIN`` is the native coin; a rate of 0 removes the route.
        """
        contract = self.contract("TestSwapRouter", router)
        self._mined(
            contract.functions.setRate(Web3.to_checksum_address(from_token), rate_e18).transact(
                {"from": self.deployer}
            )
        )

    def approve(self, token: str, owner: str, spender: str, amount_raw: int) -> str:
        """Mine an ERC-20 ``approve`` by ``owner`` (one of ``accounts``); returns its transaction hash."""
        contract = self.contract("TestToken", token)
        tx_hash = contract.functions.approve(Web3.to_checksum_address(spender), amount_raw).transact(
            {"from": Web3.to_checksum_address(owner)}
        )
        self._mined(tx_hash)
        return Web3.to_hex(tx_hash)

    def token_balance(self, token: str, holder: str) -> int:
        """``holder``'s ERC-20 balance in base units."""
        balance: int = (
            self.contract("TestToken", token).functions.balanceOf(Web3.to_checksum_address(holder)).call()
        )
        return balance

    def deploy_ostium(self, usdc: str, liquidity_raw: int = 0) -> tuple[ChecksumAddress, ChecksumAddress]:
        """Deploy the Ostium stand-ins (``TestOstiumTradingStorage`` then ``TestOstiumTrading``),
        wire them, and fund the storage with ``liquidity_raw`` USDC to pay profits from.
        Returns (trading, storage). Set each pair's oracle price with ``set_ostium_price``."""
        storage = self._deploy("TestOstiumTradingStorage", Web3.to_checksum_address(usdc))
        trading = self._deploy("TestOstiumTrading", storage)
        self._mined(
            self.contract("TestOstiumTradingStorage", storage)
            .functions.setTrading(trading)
            .transact({"from": self.deployer})
        )
        if liquidity_raw:
            self.transfer_token(usdc, self.deployer, storage, liquidity_raw)
        return trading, storage

    def set_ostium_price(self, trading: str, pair_index: int, price_e18: int) -> None:
        """The oracle price (18 decimals) the stand-in's keeper settles ``pair_index`` at."""
        self._mined(
            self.contract("TestOstiumTrading", trading)
            .functions.setPrice(pair_index, price_e18)
            .transact({"from": self.deployer})
        )

    def contract(self, artifact_name: str, address: str) -> Contract:
        """A web3 contract at ``address`` with the ABI of ``contracts/<artifact_name>.json``."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=load_artifact(artifact_name)["abi"]
        )

    def transfer_token(self, token: str, sender: str, recipient: str, amount_raw: int) -> str:
        """Mine an ERC-20 ``transfer``; returns its 0x-hex transaction hash."""
        contract = self.contract("TestToken", token)
        tx_hash = contract.functions.transfer(Web3.to_checksum_address(recipient), amount_raw).transact(
            {"from": Web3.to_checksum_address(sender)}
        )
        self._mined(tx_hash)
        return Web3.to_hex(tx_hash)

    def send_eth(self, sender: str, recipient: str, wei: int) -> str:
        """Mine a plain ETH transfer; returns its 0x-hex transaction hash."""
        tx_hash = self.w3.eth.send_transaction(
            {
                "from": Web3.to_checksum_address(sender),
                "to": Web3.to_checksum_address(recipient),
                "value": Wei(wei),
            }
        )
        self._mined(tx_hash)
        return Web3.to_hex(tx_hash)

    def mine(self, blocks: int = 1) -> int:
        """Mine empty blocks; returns the new latest block number."""
        with self.provider.lock:
            self._tester.mine_blocks(blocks)
        return int(self.w3.eth.block_number)

    def _deploy(self, artifact_name: str, *args: Any) -> ChecksumAddress:
        artifact = load_artifact(artifact_name)
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = self._mined(factory.constructor(*args).transact({"from": self.deployer}))
        address = receipt["contractAddress"]
        assert address is not None
        return Web3.to_checksum_address(address)

    def _mined(self, tx_hash: HexBytes) -> TxReceipt:
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=5)
        if receipt["status"] != 1:
            raise AssertionError(f"transaction {tx_hash.hex()} failed")
        return receipt
