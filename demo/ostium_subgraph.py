"""A stand-in for Ostium's subgraph, answering the adapter's GraphQL queries from the
events and state of the local chain's ``TestOstiumTrading`` contract.

It answers by operation (``query pairs``, ``query trades``, ``query orders``, ``query
orderOfTransaction``, ``query nativeClose``), in the shapes ``providers.venues.ostium.adapter``
reads; it is not a GraphQL engine. A ``GET`` plays Ostium's price service. Like the real
subgraph it lags the chain by nothing here: a test that wants a pending order turns the
contract's ``autoExecute`` off and settles with ``executeOrder``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from demo.localchain.chain import load_artifact

_OPERATION = re.compile(r"query\s+(\w+)")
_TX_HASH = re.compile(r'initiatedTx:\s*"(0x[0-9a-fA-F]{64})"')


@dataclass(frozen=True)
class OstiumPair:
    """A listed pair as the subgraph shows it (``max_leverage`` x100, like Ostium's)."""

    index: int
    base: str  # "EUR"
    quote: str  # "USD"
    group: str = "forex"
    min_leverage: int = 100
    max_leverage: int = 20000
    min_lev_pos: int = 1_000_000_000  # USDC base units x leverage x100... as Ostium's fee.minLevPos
    overnight_max_leverage: int = 0  # x100; 0: none (above it a trade must be a day trade)

    def wire(self) -> dict[str, Any]:
        return {
            "id": str(self.index),
            "from": self.base,
            "to": self.quote,
            "maxLeverage": str(self.max_leverage),
            "overnightMaxLeverage": str(self.overnight_max_leverage),
            "group": {
                "name": self.group,
                "minLeverage": str(self.min_leverage),
                "maxLeverage": str(self.max_leverage),
            },
            "fee": {"minLevPos": str(self.min_lev_pos)},
        }


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class OstiumSubgraph:
    """Serve on 127.0.0.1 (``start()`` returns the URL) until ``stop()``."""

    def __init__(
        self,
        *,
        rpc_url: str,
        trading: str,
        pairs: Sequence[OstiumPair],
        port: int = 0,
        from_block: int | None = None,
    ) -> None:
        """``from_block``: where the contract's events start (default: the chain's head now,
        the contract being deployed already); logs are read from there, not from block 0, so
        answers stay fast on a long-lived test chain."""
        self._w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
        self._from_block = self._w3.eth.block_number if from_block is None else from_block
        self._trading = self._w3.eth.contract(
            address=to_checksum_address(trading), abi=load_artifact("TestOstiumTrading")["abi"]
        )
        self._pairs = {pair.index: pair for pair in pairs}
        self.port = port
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        if self._server is None:
            self._server = make_server(
                "127.0.0.1", self.port, self, threaded=True, request_handler=_QuietHandler
            )
            self.port = self._server.server_port
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="ostium-subgraph", daemon=True
            )
            self._thread.start()
        return f"http://127.0.0.1:{self.port}/subgraphs/ostium"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None

    def prices_url(self) -> str:
        """Where it also plays Ostium's price service (``GET``): every pair at the
        contract's oracle price, bid = ask = mid, market open."""
        return f"http://127.0.0.1:{self.port}/PricePublish/latest-prices"

    def _latest_prices(self) -> list[dict[str, Any]]:
        now = int(time.time())
        entries = []
        for pair in self._pairs.values():
            raw = int(self._trading.functions.prices(pair.index).call())
            if not raw:
                continue
            price = str(Decimal(raw).scaleb(-18).normalize())
            entries.append(
                {
                    "from": pair.base,
                    "to": pair.quote,
                    "bid": price,
                    "mid": price,
                    "ask": price,
                    "isMarketOpen": True,
                    "timestampSeconds": now,
                }
            )
        return entries

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.method == "GET":
            return Response(json.dumps(self._latest_prices()), mimetype="application/json")(
                environ, start_response
            )
        try:
            body = json.loads(request.get_data() or b"{}")
            query = str(body.get("query") or "")
            variables = body.get("variables") or {}
        except ValueError:
            return Response(json.dumps({"errors": [{"message": "bad JSON"}]}), status=400)(
                environ, start_response
            )
        with self._lock:
            self.queries.append(query)
        match = _OPERATION.search(query)
        operation = match.group(1) if match else ""
        handlers = {
            "pairs": lambda: {"pairs": [pair.wire() for pair in self._pairs.values()]},
            "trades": lambda: {"trades": self._open_trades(str(variables.get("trader", "")))},
            "orders": lambda: {
                "limits": [],
                "orders": self._pending_orders(str(variables.get("trader", ""))),
            },
            "orderOfTransaction": lambda: {"orders": self._orders_of_transaction(query)},
            "nativeClose": lambda: {
                "orders": self._native_closes(
                    str(variables.get("trader", "")), str(variables.get("tradeID", ""))
                )
            },
        }
        handler = handlers.get(operation)
        if handler is None:
            answer: dict[str, Any] = {"errors": [{"message": f"unknown query {operation!r}"}]}
        else:
            answer = {"data": handler()}
        return Response(json.dumps(answer), mimetype="application/json")(environ, start_response)

    # --- reading the chain -------------------------------------------------------------

    def _logs(self, event: str, **filters: Any) -> list[Any]:
        return list(
            getattr(self._trading.events, event)().get_logs(
                from_block=self._from_block, argument_filters=filters or None
            )
        )

    def _pair(self, index: int) -> dict[str, str]:
        pair = self._pairs.get(index)
        base, quote = (pair.base, pair.quote) if pair else (f"P{index}", "USD")
        return {"id": str(index), "from": base, "to": quote}

    def _open_trades(self, trader: str) -> list[dict[str, Any]]:
        if not Web3.is_address(trader):
            return []
        owner = to_checksum_address(trader)
        trades = []
        seen: set[tuple[int, int]] = set()
        for log in reversed(self._logs("MarketOpenExecuted", trader=owner)):
            key = (int(log.args.pairIndex), int(log.args.index))
            if key in seen or not self._trading.functions.isOpen(owner, *key).call():
                seen.add(key)
                continue
            seen.add(key)
            state = self._trading.functions.getTrade(owner, *key).call()
            block = self._w3.eth.get_block(log.blockNumber)
            trades.append(
                {
                    "tradeID": str(log.args.orderId),
                    "index": str(key[1]),
                    "collateral": str(state[0]),
                    "leverage": str(state[5]),
                    "openPrice": str(state[1]),
                    "takeProfitPrice": str(state[2]),
                    "stopLossPrice": str(state[3]),
                    "isBuy": bool(state[8]),
                    "timestamp": str(int(block["timestamp"])),
                    "pair": self._pair(key[0]),
                }
            )
        return trades

    def _native_closes(self, trader: str, trade_id: str) -> list[dict[str, Any]]:
        """The keeper's take-profit / stop-loss closes (``LimitCloseExecuted``) of one trade."""
        if not Web3.is_address(trader) or not trade_id.isdigit():
            return []
        closes = []
        for log in self._logs("LimitCloseExecuted", trader=to_checksum_address(trader)):
            if int(log.args.tradeId) != int(trade_id):
                continue
            block = self._w3.eth.get_block(log.blockNumber)
            closes.append(
                {
                    "id": str(log.args.orderId),
                    "orderAction": "TakeProfit" if log.args.limitType == 0 else "StopLoss",
                    "price": str(log.args.price),
                    "executedAt": str(int(block["timestamp"])),
                }
            )
        return closes

    def _settled(self) -> Mapping[int, Any]:
        settled: dict[int, Any] = {}
        for event in ("MarketOpenExecuted", "MarketCloseExecuted", "OrderCancelled"):
            for log in self._logs(event):
                settled[int(log.args.orderId)] = log
        return settled

    def _pending_orders(self, trader: str) -> list[dict[str, Any]]:
        if not Web3.is_address(trader):
            return []
        settled = self._settled()
        pending = []
        for log in self._logs("MarketOrderInitiated", trader=to_checksum_address(trader)):
            order_id = int(log.args.orderId)
            if order_id in settled:
                continue
            block = self._w3.eth.get_block(log.blockNumber)
            pending.append(
                {
                    "id": str(order_id),
                    "orderAction": "Open" if log.args.open else "Close",
                    "collateral": "0",
                    "leverage": "0",
                    "isBuy": True,
                    "price": "0",
                    "initiatedAt": str(int(block["timestamp"])),
                    "pair": self._pair(int(log.args.pairIndex)),
                }
            )
        return pending

    def _orders_of_transaction(self, query: str) -> list[dict[str, Any]]:
        match = _TX_HASH.search(query)
        if match is None:
            return []
        try:
            receipt = self._w3.eth.get_transaction_receipt(HexStr(match.group(1)))
        except Exception:  # noqa: BLE001 - not mined (yet): the subgraph has nothing
            return []
        # The receipt also holds the USDC transfers: only this contract's events are read.
        initiated = self._trading.events.MarketOrderInitiated().process_receipt(receipt, errors=DISCARD)
        settled = self._settled()
        orders = []
        for log in initiated:
            order_id = int(log.args.orderId)
            done = settled.get(order_id)
            entry: dict[str, Any] = {
                "id": str(order_id),
                "orderAction": "Open" if log.args.open else "Close",
                "isPending": done is None,
                "isCancelled": done is not None and done.event == "OrderCancelled",
                "cancelReason": done.args.reason
                if done is not None and done.event == "OrderCancelled"
                else None,
                "price": "0",
                "priceAfterImpact": None,
                "collateral": "0",
                "leverage": "0",
            }
            if done is not None and done.event == "MarketOpenExecuted":
                entry.update(
                    price=str(done.args.price),
                    collateral=str(done.args.collateral),
                    leverage=str(done.args.leverage),
                )
            elif done is not None and done.event == "MarketCloseExecuted":
                trade = self._trading.functions.getTrade(
                    log.args.trader, log.args.pairIndex, done.args.index
                ).call()
                entry.update(
                    price=str(done.args.price),
                    collateral=str(done.args.collateralClosed),
                    leverage=str(trade[5]),
                )
            orders.append(entry)
        return orders
