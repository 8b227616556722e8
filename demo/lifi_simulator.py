"""A local stand-in for LI-FI's API, backed by a real chain: ``make run`` points the ``lifi``
provider at it, and the contract tests use it as the fake server.

``LifiSimulator`` serves ``/v1/quote``, ``/v1/status``, ``/v1/chains``, ``/v1/tokens`` and
``/v1/keys/test`` in LI-FI's documented format (``@lifi/types``: ``LiFiStep``,
``StatusResponse``; errors ``{"message", "code"}``) on 127.0.0.1, from a werkzeug server in a
daemon thread. The route it offers is a ``TestSwapRouter`` contract on the chain behind
``rpc_url``: a quote is a real ``swap(...)`` transaction for that router, priced with the
router's ``rateE18``; the status of a transaction is read from the chain (its receipt and the
router's ``Swapped`` event). A swap shows as PENDING / WAIT_DESTINATION_TRANSACTION for
``delay_seconds`` after the simulator first sees it mined, as a bridge would, then DONE /
COMPLETED with the amount the event paid out.

Tests can ``script`` answers per path (consumed in order before the simulated behaviour
resumes) and read back the requests received. Nothing here is an app: no model, no settings.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, NamedTuple

from eth_utils import is_address, to_checksum_address
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

NATIVE_COIN = "0x0000000000000000000000000000000000000000"
DEFAULT_SLIPPAGE = Decimal("0.005")
# USD per whole token, by symbol: what the simulator prices amounts and gas with.
DEFAULT_PRICES: Mapping[str, Decimal] = {"USDC": Decimal(1), "USDT": Decimal(1), "ETH": Decimal(3000)}
TOOL = {"key": "testswap", "name": "Test swap router", "logoURI": ""}
FIXED_FEE = Decimal("0.0025")  # shown as LI-FI's fixed fee, "included" (priced into the router's rate)
GAS_ESTIMATE = 150_000
GAS_LIMIT = 200_000
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_UINT = re.compile(r"[0-9]+")

# The parts of TestSwapRouter (demo/localchain/contracts/TestSwapRouter.sol) the simulator uses.
ROUTER_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "rateE18",
        "stateMutability": "view",
        "inputs": [{"name": "", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "swap",
        "stateMutability": "payable",
        "inputs": [
            {"name": "fromToken", "type": "address"},
            {"name": "fromAmount", "type": "uint256"},
            {"name": "recipient", "type": "address"},
            {"name": "minOut", "type": "uint256"},
            {"name": "transferId", "type": "bytes32"},
        ],
        "outputs": [{"name": "toAmount", "type": "uint256"}],
    },
    {
        "type": "event",
        "name": "Swapped",
        "anonymous": False,
        "inputs": [
            {"name": "sender", "type": "address", "indexed": True},
            {"name": "fromToken", "type": "address", "indexed": True},
            {"name": "fromAmount", "type": "uint256", "indexed": False},
            {"name": "recipient", "type": "address", "indexed": True},
            {"name": "toAmount", "type": "uint256", "indexed": False},
            {"name": "transferId", "type": "bytes32", "indexed": False},
        ],
    },
]
_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": kind}],
    }
    for name, kind in (("symbol", "string"), ("decimals", "uint8"), ("name", "string"))
]


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer to give instead of the simulated one: ``body`` a dict or list goes out as
    JSON, a str as is (for garbage), None as an empty body; ``delay_seconds`` is slept first
    (to make a client time out)."""

    status_code: int = 200
    body: dict[str, Any] | list[Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


class ReceivedRequest(NamedTuple):
    path: str  # relative to the API root: "/quote", "/status", ...
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased


class _ApiError(Exception):
    """An error answer in LI-FI's shape."""

    def __init__(self, status_code: int, message: str, code: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LifiSimulator:
    """LI-FI's API for swaps through one ``router`` into ``output_token`` on the chain at
    ``rpc_url``.

    ``to_chain_id`` is the destination chain the simulator claims (default: the RPC's own, a
    same-chain swap; another id makes it look like a bridge, while the payout still happens
    on the local chain). ``prices`` are USD per whole token by symbol (``DEFAULT_PRICES``
    otherwise). Thread-safe: the server answers requests concurrently.
    """

    def __init__(  # noqa: PLR0917 - the signature agreed with the local chain's setup, positional as given
        self,
        rpc_url: str,
        router: str,
        output_token: str,
        output_decimals: int = 6,
        to_chain_id: int | None = None,
        delay_seconds: float = 3.0,
        port: int = 0,
        *,
        prices: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.router = to_checksum_address(router)
        self.output_token = to_checksum_address(output_token)
        self.output_decimals = output_decimals
        self.delay_seconds = delay_seconds
        self.port = port
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._to_chain_id = to_chain_id
        self._w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self._router = self._w3.eth.contract(address=self.router, abi=ROUTER_ABI)
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[ScriptedResponse]] = {}
        self._received: list[ReceivedRequest] = []
        self._first_seen: dict[str, float] = {}
        self._tokens: dict[str, dict[str, Any]] = {}
        self._chain_id: int | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ----------------------------------------------------------------------

    def start(self) -> str:
        """Serve in a daemon thread; returns the base URL (``http://127.0.0.1:<port>/v1``)."""
        if self._server is None:
            self._server = make_server(
                "127.0.0.1", self.port, self, threaded=True, request_handler=_QuietHandler
            )
            self.port = self._server.server_port
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="lifi-simulator", daemon=True
            )
            self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, path: str, responses: Iterable[ScriptedResponse]) -> None:
        """Answer the next requests to ``path`` ("/quote" or "/v1/quote") with ``responses``,
        in order, before falling back to the simulated behaviour."""
        with self._lock:
            self._scripts.setdefault(_api_path(path), deque()).extend(responses)

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        """Every request received so far, in order: (path relative to /v1, query)."""
        with self._lock:
            return [(received.path, dict(received.query)) for received in self._received]

    @property
    def received(self) -> list[ReceivedRequest]:
        """Like ``requests``, with the headers."""
        with self._lock:
            return list(self._received)

    def reset(self) -> None:
        """Forget scripts, requests received and when swaps were first seen."""
        with self._lock:
            self._scripts.clear()
            self._received.clear()
            self._first_seen.clear()

    # --- WSGI -------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        path = _api_path(request.path)
        with self._lock:
            self._received.append(
                ReceivedRequest(
                    path=path,
                    query=dict(request.args.items()),
                    headers={name.lower(): value for name, value in request.headers.items()},
                )
            )
            queue = self._scripts.get(path)
            scripted = queue.popleft() if queue else None
        response = self._scripted(scripted) if scripted is not None else self._simulated(request, path)
        return response(environ, start_response)

    def _scripted(self, scripted: ScriptedResponse) -> Response:
        if scripted.delay_seconds > 0:
            time.sleep(scripted.delay_seconds)
        body = scripted.body
        if isinstance(body, dict | list):
            return Response(
                json.dumps(body),
                status=scripted.status_code,
                headers=scripted.headers,
                mimetype="application/json",
            )
        return Response(
            body or "", status=scripted.status_code, headers=scripted.headers, mimetype="text/plain"
        )

    def _simulated(self, request: Request, path: str) -> Response:
        routes = {
            "/quote": self._quote,
            "/status": self._status,
            "/chains": self._chains,
            "/tokens": self._tokens_answer,
            "/keys/test": self._keys_test,
        }
        handler = routes.get(path)
        try:
            if request.method != "GET":
                raise _ApiError(405, f"{request.method} is not allowed here", 1000)
            if handler is None:
                raise _ApiError(404, f"no such endpoint: {path}", 1003)
            status, body = handler(request)
        except _ApiError as exc:
            status, body = exc.status_code, {"message": exc.message, "code": exc.code}
        except Exception as exc:  # noqa: BLE001 - a server answers every request; the error is the answer
            status, body = 500, {"message": f"internal error: {type(exc).__name__}: {exc}", "code": 1006}
        return Response(json.dumps(body), status=status, mimetype="application/json")

    # --- endpoints --------------------------------------------------------------------

    def _quote(self, request: Request) -> tuple[int, dict[str, Any]]:
        args = request.args
        missing = [
            name
            for name in ("fromChain", "toChain", "fromToken", "toToken", "fromAddress", "fromAmount")
            if not args.get(name)
        ]
        if missing:
            raise _ApiError(400, f"missing query parameters: {', '.join(missing)}", 1011)
        from_chain, to_chain = (
            _chain_param(args["fromChain"], "fromChain"),
            _chain_param(args["toChain"], "toChain"),
        )
        from_token = _address_param(args["fromToken"], "fromToken")
        to_token = _address_param(args["toToken"], "toToken")
        from_address = _address_param(args["fromAddress"], "fromAddress")
        to_address = _address_param(args.get("toAddress") or args["fromAddress"], "toAddress")
        if not _UINT.fullmatch(args["fromAmount"]) or int(args["fromAmount"]) == 0:
            raise _ApiError(400, "fromAmount must be a positive integer in base units", 1011)
        from_amount = int(args["fromAmount"])
        slippage = _slippage_param(args.get("slippage"))

        chain_id, destination = self.chain_id, self.to_chain_id
        if from_chain != chain_id or to_chain != destination or to_token != self.output_token:
            raise _no_route(
                f"routes exist only from chain {chain_id} to {self.output_token} on chain {destination}"
            )
        rate = int(self._router.functions.rateE18(from_token).call())
        to_amount = from_amount * rate // 10**18
        if to_amount == 0:
            raise _no_route(f"no route for {from_token}" if rate == 0 else "the amount is too low")
        to_amount_min = int((Decimal(to_amount) * (1 - slippage)).to_integral_value(rounding=ROUND_FLOOR))

        transaction_id = "0x" + secrets.token_hex(32)
        data = self._router.encode_abi(
            "swap",
            args=[from_token, from_amount, to_address, to_amount_min, bytes.fromhex(transaction_id[2:])],
        )
        gas_price = int(self._w3.eth.gas_price)
        from_meta = self._token(chain_id, from_token)
        to_meta = self._token(destination, self.output_token)
        native = self._token(chain_id, NATIVE_COIN)
        from_usd = self._usd(from_amount, from_meta)
        fee_amount = int(Decimal(from_amount) * FIXED_FEE)
        gas_amount = gas_price * GAS_ESTIMATE
        action = {
            "fromChainId": chain_id,
            "fromAmount": str(from_amount),
            "fromToken": from_meta,
            "fromAddress": from_address,
            "toChainId": destination,
            "toToken": to_meta,
            "toAddress": to_address,
            "slippage": float(slippage),
        }
        estimate = {
            "tool": TOOL["key"],
            "approvalAddress": self.router,
            "fromAmount": str(from_amount),
            "toAmount": str(to_amount),
            "toAmountMin": str(to_amount_min),
            "fromAmountUSD": from_usd,
            "toAmountUSD": self._usd(to_amount, to_meta),
            "executionDuration": math.ceil(self.delay_seconds),
            "feeCosts": [
                {
                    "name": "LIFI Fixed Fee",
                    "description": "Fixed fee, already deducted from the quoted amount",
                    "percentage": str(FIXED_FEE),
                    "token": from_meta,
                    "amount": str(fee_amount),
                    "amountUSD": self._usd(fee_amount, from_meta) or "0.00",
                    "included": True,
                }
            ],
            "gasCosts": [
                {
                    "type": "SEND",
                    "price": str(gas_price),
                    "estimate": str(GAS_ESTIMATE),
                    "limit": str(GAS_LIMIT),
                    "amount": str(gas_amount),
                    "amountUSD": self._usd(gas_amount, native) or "0.00",
                    "token": native,
                }
            ],
        }
        step_id = str(uuid.uuid4())
        quote = {
            "type": "lifi",
            "id": step_id,
            "tool": TOOL["key"],
            "toolDetails": TOOL,
            "action": action,
            "estimate": estimate,
            "includedSteps": [
                {
                    "id": str(uuid.uuid4()),
                    "type": "swap" if destination == chain_id else "cross",
                    "tool": TOOL["key"],
                    "toolDetails": TOOL,
                    "action": action,
                    "estimate": estimate,
                }
            ],
            "integrator": request.args.get("integrator") or request.headers.get("x-lifi-integrator", ""),
            "transactionId": transaction_id,
            "transactionRequest": {
                "from": from_address,
                "to": self.router,
                "data": data,
                "value": hex(from_amount if from_token == NATIVE_COIN else 0),
                "gasLimit": hex(GAS_LIMIT),
                "gasPrice": hex(gas_price),
                "chainId": chain_id,
            },
        }
        return 200, quote

    def _status(self, request: Request) -> tuple[int, dict[str, Any]]:
        tx_hash = request.args.get("txHash", "")
        if not _TX_HASH.fullmatch(tx_hash):
            raise _ApiError(400, "txHash must be a 0x-prefixed 32-byte hash", 1011)
        tx_hash = tx_hash.lower()
        not_found = {"status": "NOT_FOUND"}
        try:
            receipt = self._w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            transaction = self._w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return 200, not_found
        if transaction.get("to") is None or to_checksum_address(transaction["to"]) != self.router:
            return 200, not_found  # not a transfer through our route: LI-FI does not know it
        chain_id = self.chain_id
        block = self._w3.eth.get_block(receipt["blockNumber"])
        sending: dict[str, Any] = {
            "txHash": tx_hash,
            "txLink": f"{self.base_url}/tx/{tx_hash}",
            "chainId": chain_id,
            "gasPrice": str(receipt.get("effectiveGasPrice", 0)),
            "gasUsed": str(receipt["gasUsed"]),
            "gasToken": self._token(chain_id, NATIVE_COIN),
            "gasAmount": str(receipt.get("effectiveGasPrice", 0) * receipt["gasUsed"]),
            "timestamp": block["timestamp"],
            "value": str(transaction.get("value", 0)),
        }
        base = {
            "tool": TOOL["key"],
            "fromAddress": to_checksum_address(transaction["from"]),
            "lifiExplorerLink": f"{self.base_url}/explorer/{tx_hash}",
            "metadata": {"integrator": request.headers.get("x-lifi-integrator", "")},
        }
        if receipt["status"] != 1:
            call = self._decoded_swap_call(transaction.get("input", b""))
            if call is not None:
                sending["amount"] = str(call["fromAmount"])
                sending["token"] = self._token(chain_id, call["fromToken"])
            return 200, {
                **base,
                "transactionId": "0x" + bytes(call["transferId"]).hex() if call else tx_hash,
                "status": "FAILED",
                "substatus": "UNKNOWN_FAILED_ERROR",
                "substatusMessage": "The transaction failed on the source chain.",
                "toAddress": to_checksum_address(call["recipient"]) if call else None,
                "sending": sending,
            }
        events = self._router.events.Swapped().process_receipt(receipt, errors=DISCARD)
        if not events:
            return 200, not_found
        swapped = events[0]["args"]
        sending["amount"] = str(swapped["fromAmount"])
        sending["token"] = self._token(chain_id, swapped["fromToken"])
        with self._lock:
            first_seen = self._first_seen.setdefault(tx_hash, time.monotonic())
        answer = {
            **base,
            "transactionId": "0x" + bytes(swapped["transferId"]).hex(),
            "toAddress": to_checksum_address(swapped["recipient"]),
            "sending": sending,
        }
        if time.monotonic() - first_seen < self.delay_seconds:
            return 200, {
                **answer,
                "status": "PENDING",
                "substatus": "WAIT_DESTINATION_TRANSACTION",
                "substatusMessage": "The bridge is waiting for the destination transaction.",
                "receiving": {"chainId": self.to_chain_id},
            }
        to_meta = self._token(self.to_chain_id, self.output_token)
        return 200, {
            **answer,
            "status": "DONE",
            "substatus": "COMPLETED",
            "substatusMessage": "The transfer is complete.",
            "receiving": {
                "txHash": tx_hash,
                "txLink": f"{self.base_url}/tx/{tx_hash}",
                "chainId": self.to_chain_id,
                "amount": str(swapped["toAmount"]),
                "amountUSD": self._usd(int(swapped["toAmount"]), to_meta),
                "token": to_meta,
                "timestamp": block["timestamp"] + math.ceil(self.delay_seconds),
            },
        }

    def _chains(self, request: Request) -> tuple[int, dict[str, Any]]:
        types = {t.strip().upper() for t in request.args.get("chainTypes", "EVM").split(",") if t.strip()}
        if "EVM" not in types:
            return 200, {"chains": []}
        chains = []
        for chain_id in dict.fromkeys((self.chain_id, self.to_chain_id)):
            native = self._token(chain_id, NATIVE_COIN)
            chains.append(
                {
                    "id": chain_id,
                    "key": f"local{chain_id}",
                    "chainType": "EVM",
                    "name": f"Local chain {chain_id}",
                    "coin": native["symbol"],
                    "mainnet": False,
                    "logoURI": "",
                    "nativeToken": native,
                    "diamondAddress": self.router,
                    "metamask": {
                        "chainId": hex(chain_id),
                        "chainName": f"Local chain {chain_id}",
                        "nativeCurrency": {
                            "name": native["name"],
                            "symbol": native["symbol"],
                            "decimals": 18,
                        },
                        "rpcUrls": [self.rpc_url],
                        "blockExplorerUrls": [],
                    },
                }
            )
        return 200, {"chains": chains}

    def _tokens_answer(self, request: Request) -> tuple[int, dict[str, Any]]:
        tokens: dict[str, list[dict[str, Any]]] = {
            str(self.chain_id): [self._token(self.chain_id, NATIVE_COIN)]
        }
        tokens.setdefault(str(self.to_chain_id), []).append(self._token(self.to_chain_id, self.output_token))
        return 200, {"tokens": tokens}

    def _keys_test(self, request: Request) -> tuple[int, dict[str, Any]]:
        if not request.headers.get("x-lifi-api-key"):
            raise _ApiError(401, "Unauthorized: no valid API key was given.", 1010)
        return 200, {"message": "The API key is valid."}

    # --- chain reads ------------------------------------------------------------------

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._w3.eth.chain_id)
        return self._chain_id

    @property
    def to_chain_id(self) -> int:
        return self._to_chain_id if self._to_chain_id is not None else self.chain_id

    def _token(self, chain_id: int, address: str) -> dict[str, Any]:
        """A LI-FI ``Token``; ERC-20 metadata is read from the local chain once."""
        address = to_checksum_address(address)
        key = f"{chain_id}:{address}"
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None:
            return cached
        if address == NATIVE_COIN:
            symbol, name, decimals = "ETH", "Ether", 18
        else:
            token = self._w3.eth.contract(address=address, abi=_ERC20_ABI)
            try:
                symbol = str(token.functions.symbol().call())
                name = str(token.functions.name().call())
                decimals = int(token.functions.decimals().call())
            except Exception:  # noqa: BLE001 - a token without metadata still gets a quote
                symbol, name = "UNKNOWN", "Unknown token"
                decimals = self.output_decimals if address == self.output_token else 18
        price = self.prices.get(symbol)
        meta = {
            "address": address,
            "chainId": chain_id,
            "symbol": symbol,
            "decimals": decimals,
            "name": name,
            "coinKey": symbol,
            "logoURI": "",
            "priceUSD": str(price) if price is not None else "0",
        }
        with self._lock:
            self._tokens[key] = meta
        return meta

    def _usd(self, amount: int, token: Mapping[str, Any]) -> str | None:
        price = self.prices.get(str(token["symbol"]))
        if price is None:
            return None
        value = Decimal(amount) / Decimal(10) ** int(token["decimals"]) * Decimal(price)
        return str(value.quantize(Decimal("0.01")))

    def _decoded_swap_call(self, data: Any) -> dict[str, Any] | None:
        try:
            function, args = self._router.decode_function_input(data)
        except ValueError:
            return None
        return dict(args) if function.fn_name == "swap" else None


def _api_path(path: str) -> str:
    """ "/v1/quote" and "/quote" -> "/quote"."""
    path = "/" + path.strip("/")
    return (path[3:] or "/") if path == "/v1" or path.startswith("/v1/") else path


def _chain_param(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _ApiError(400, f"{name} must be a chain id", 1011) from None


def _address_param(value: str, name: str) -> str:
    if not is_address(value):
        raise _ApiError(400, f"{name} must be an EVM address", 1011)
    return to_checksum_address(value)


def _slippage_param(value: str | None) -> Decimal:
    if not value:
        return DEFAULT_SLIPPAGE
    try:
        slippage = Decimal(value)
    except InvalidOperation:
        raise _ApiError(400, "slippage must be a fraction", 1011) from None
    if not slippage.is_finite() or not Decimal(0) <= slippage < Decimal(1):
        raise _ApiError(400, "slippage must be a fraction in [0, 1)", 1011)
    return slippage


def _no_route(reason: str) -> _ApiError:
    return _ApiError(404, f"Unable to find a quote for the requested transfer: {reason}.", 1002)
