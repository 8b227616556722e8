"""A stateful fake of Lighter: its REST API (``/api/v1/...``) and the account WebSocket channel.

It keeps what the tests need of the exchange, in Lighter's wire format:

- a master account (with an L1 address) and the sub-accounts ``CreateSubAccount`` (tx 9)
  makes, listed by ``accountsByL1Address``; an API key per account and slot, registered by
  ``ChangePubKey`` (tx 8), with its own strictly increasing nonce (``nextNonce``);
- USDC balances, moved by ``Transfer`` (tx 12);
- orders (``CreateOrder`` 14, ``CancelOrder`` 15) that ``sendTx`` acknowledges at once and that
  execute ``execution_delay`` seconds later, as Lighter's sequencer does: a market order fills
  at the book's best price (or is cancelled ``canceled-margin-not-allowed`` when the account's
  balance does not cover the market's initial margin), a trigger order (stop loss / take
  profit) rests until ``set_price`` crosses its trigger and then fills reduce-only;
- each change of an order is pushed as ``update/account_all_orders`` to the connections
  subscribed to ``account_all_orders/{account}`` (with an auth token of that account), and is
  visible in ``accountActiveOrders`` / ``accountInactiveOrders`` (auth too);
- refusals in Lighter's error shape: HTTP 400 ``{"code": <int>, "message": "..."}``;
- requests held unanswered on demand (``hold``): a Lighter that has a request and has not
  answered it yet, for crash tests. The server answers one request at a time, so nothing
  else is answered while one is held.

Signatures are not checked (that needs Lighter's Poseidon2 / ECgFp5 signer); the L1 signature
of ChangePubKey and Transfer is: it must recover to the master's L1 address from the
transaction (without ``L1Sig``) as the test signer writes it.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from eth_account import Account
from eth_account.messages import encode_defunct
from pytest_httpserver import HTTPServer
from websockets.sync.server import ServerConnection
from werkzeug import Request, Response

from tests.contract.lighter.fake_stream import FakeLighterStream

FIXTURES = Path(__file__).parent / "fixtures"
API = "/api/v1"
HOLD_SECONDS = 60.0  # a held request is answered after this long at the latest

MARKET = 1
STOP_LOSS, TAKE_PROFIT = 2, 4
TYPES = {
    0: "limit",
    1: "market",
    2: "stop-loss",
    3: "stop-loss-limit",
    4: "take-profit",
    5: "take-profit-limit",
}
TIME_IN_FORCE = {0: "immediate-or-cancel", 1: "good-till-time", 2: "post-only"}

ERROR_INVALID_NONCE = (21120, "invalid nonce")
ERROR_API_KEY_NOT_FOUND = (21109, "api key not found")
ERROR_INVALID_AUTH = (20013, "invalid auth")
ERROR_INVALID_L1_SIGNATURE = (21506, "invalid l1 signature")
ERROR_NOT_ENOUGH_BALANCE = (21701, "not enough balance")
ERROR_ACCOUNT_NOT_FOUND = (21100, "account not found")


@dataclass
class _Hold:
    waiting: int = 0
    gate: threading.Event = field(default_factory=threading.Event)


@dataclass
class FakeAccount:
    index: int
    l1_address: str
    usdc: Decimal = Decimal(0)
    keys: dict[int, str] = field(default_factory=dict)  # slot: public key
    positions: dict[int, tuple[Decimal, Decimal]] = field(
        default_factory=dict
    )  # market: (signed size, entry)


class FakeLighter:
    def __init__(
        self, *, master: int, api_key_index: int, l1_address: str, execution_delay: float = 0.05
    ) -> None:
        self.master = master
        self.api_key_index = api_key_index
        self.l1_address = l1_address
        self.execution_delay = execution_delay
        # Scripting: every opening market order is cancelled for margin, as when Lighter finds
        # the account's collateral short (``canceled-margin-not-allowed``).
        self.refuse_margin = False
        self.details = json.loads((FIXTURES / "order_book_details.json").read_text())
        self.markets = {int(m["market_id"]): m for m in self.details["order_book_details"]}
        self.accounts: dict[int, FakeAccount] = {
            master: FakeAccount(index=master, l1_address=l1_address, keys={api_key_index: "0x" + "ab" * 40})
        }
        self.nonces: dict[tuple[int, int], int] = {(master, api_key_index): 722}
        self.orders: list[dict[str, Any]] = []
        self.txs: list[tuple[int, dict[str, Any]]] = []  # every transaction accepted by sendTx
        self.books: dict[int, tuple[Decimal, Decimal]] = {}  # market: (bid, ask)
        for market_id in (0, 1, 2):
            book = json.loads((FIXTURES / f"order_book_orders_{market_id}.json").read_text())
            self.books[market_id] = (Decimal(book["bids"][0]["price"]), Decimal(book["asks"][0]["price"]))
        self.stream = _AccountStream(self)
        self._lock = threading.RLock()
        self._next_sub = itertools.count(master * 1000 + 1)
        self._next_order = itertools.count(281474977400000)
        self._timers: list[threading.Timer] = []
        self._holds: dict[str, _Hold] = {}
        self._holds_lock = threading.Lock()

    # --- scripting ------------------------------------------------------------------------

    def serve(self, server: HTTPServer) -> None:
        server.expect_request(re.compile(rf"^{API}/.*")).respond_with_handler(self.handle)

    def fund(self, account_index: int, usdc: Decimal) -> None:
        self.accounts[account_index].usdc += usdc

    def set_price(self, market_id: int, price: Decimal) -> None:
        """Move the book (bid = ask = ``price``) and fire the trigger orders it crosses."""
        with self._lock:
            self.books[market_id] = (price, price)
            for order in list(self.orders):
                waiting = order["market_index"] == market_id and order["trigger_status"] == "mark-price"
                if waiting and _crossed(order, price):
                    self._fill(order, price)

    def orders_of(self, account_index: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(o) for o in self.orders if o["owner_account_index"] == account_index]

    def order(self, account_index: int, client_order_index: int) -> dict[str, Any] | None:
        for order in self.orders_of(account_index):
            if order["client_order_index"] == client_order_index:
                return order
        return None

    def tx_types(self) -> list[int]:
        return [tx_type for tx_type, _ in self.txs]

    def hold(self, endpoint: str) -> None:
        """Keep the requests to ``endpoint`` waiting, unanswered, until ``release``: a REST path
        (``accountActiveOrders``) or ``sendTx:<tx type>`` (``sendTx:14``, a CreateOrder)."""
        with self._holds_lock:
            self._holds[endpoint] = _Hold()

    def held(self, endpoint: str) -> int:
        """How many requests to ``endpoint`` are waiting now."""
        with self._holds_lock:
            hold = self._holds.get(endpoint)
            return hold.waiting if hold else 0

    def release(self, endpoint: str) -> None:
        """Answer the requests waiting for ``endpoint`` (as if they had just arrived) and stop holding."""
        with self._holds_lock:
            hold = self._holds.pop(endpoint, None)
        if hold is not None:
            hold.gate.set()

    def close(self) -> None:
        for endpoint in list(self._holds):
            self.release(endpoint)
        for timer in self._timers:
            timer.cancel()

    # --- REST -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path.removeprefix(f"{API}/")
        args = request.args
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        self._wait_if_held(f"sendTx:{form.get('tx_type', '')}" if path == "sendTx" else path)
        with self._lock:
            if path == "orderBookDetails":
                return _json(self.details)
            if path == "orderBookOrders":
                bid, ask = self.books[int(args["market_id"])]
                return _json(
                    {
                        "code": 200,
                        "asks": [{"price": str(ask), "size": "10"}],
                        "bids": [{"price": str(bid), "size": "10"}],
                    }
                )
            if path == "nextNonce":
                slot = (int(args["account_index"]), int(args["api_key_index"]))
                return _json({"code": 200, "nonce": self.nonces.get(slot, 0)})
            if path == "accountsByL1Address":
                subs = [
                    a for a in self.accounts.values() if a.l1_address.lower() == args["l1_address"].lower()
                ]
                if not subs:
                    return _error(ERROR_ACCOUNT_NOT_FOUND)
                return _json(
                    {
                        "code": 200,
                        "l1_address": args["l1_address"],
                        "sub_accounts": [{"index": a.index, "l1_address": a.l1_address} for a in subs],
                    }
                )
            if path == "apikeys":
                account = self.accounts.get(int(args["account_index"]))
                if account is None:
                    return _error(ERROR_ACCOUNT_NOT_FOUND)
                key_slot = int(args["api_key_index"])
                keys = (
                    [
                        {
                            "account_index": account.index,
                            "api_key_index": key_slot,
                            "public_key": account.keys[key_slot],
                            "nonce": self.nonces.get((account.index, key_slot), 0),
                            "transaction_time": 0,
                        }
                    ]
                    if key_slot in account.keys
                    else []
                )
                return _json({"code": 200, "api_keys": keys})
            if path == "account":
                account = self.accounts.get(int(args["value"]))
                if account is None:
                    return _error(ERROR_ACCOUNT_NOT_FOUND)
                return _json({"code": 200, "total": 1, "accounts": [self._account_json(account)]})
            if path in {"accountActiveOrders", "accountInactiveOrders"}:
                account_index = int(args["account_index"])
                if not _auth_ok(request.headers.get("Authorization", ""), account_index):
                    return _error(ERROR_INVALID_AUTH)
                active = path == "accountActiveOrders"
                orders = [
                    o
                    for o in self.orders_of(account_index)
                    if (o["status"] in {"open", "pending", "in-progress"}) == active
                    and ("market_id" not in args or o["market_index"] == int(args["market_id"]))
                ]
                return _json({"code": 200, "orders": orders} | ({} if active else {"next_cursor": ""}))
            if path == "sendTx" and request.method == "POST":
                return self._send_tx(int(form["tx_type"]), json.loads(form["tx_info"]))
        return _error((20001, f"invalid path: {path}"), status=404)

    def _wait_if_held(self, endpoint: str) -> None:
        with self._holds_lock:
            hold = self._holds.get(endpoint)
            if hold is None:
                return
            hold.waiting += 1
        hold.gate.wait(timeout=HOLD_SECONDS)
        with self._holds_lock:
            hold.waiting -= 1

    def _send_tx(self, tx_type: int, tx: dict[str, Any]) -> Response:
        account_index = int(tx.get("AccountIndex", tx.get("FromAccountIndex", -1)))
        key = int(tx["ApiKeyIndex"])
        if account_index not in self.accounts:
            return _error(ERROR_ACCOUNT_NOT_FOUND)
        if tx_type != 8 and key not in self.accounts[account_index].keys:
            return _error(ERROR_API_KEY_NOT_FOUND)
        if int(tx["Nonce"]) != self.nonces.get((account_index, key), 0):
            return _error(ERROR_INVALID_NONCE)
        if tx_type in {8, 12} and not self._l1_signed(tx):
            return _error(ERROR_INVALID_L1_SIGNATURE)
        if tx_type == 12 and self.accounts[account_index].usdc < Decimal(tx["Amount"]).scaleb(-6):
            return _error(ERROR_NOT_ENOUGH_BALANCE)
        self.nonces[(account_index, key)] = int(tx["Nonce"]) + 1
        self.txs.append((tx_type, tx))
        timer = threading.Timer(self.execution_delay, self._execute, args=(tx_type, tx))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
        return _json(
            {
                "code": 200,
                "message": '{"ratelimit": "didn\'t use volume quota"}',
                "tx_hash": f"{len(self.txs):080x}",
                "predicted_execution_time_ms": int(time.time() * 1000),
                "volume_quota_remaining": 9990,
            }
        )

    def _l1_signed(self, tx: dict[str, Any]) -> bool:
        tx = dict(tx)
        signature = tx.pop("L1Sig", "")
        if not signature:
            return False
        signer = Account.recover_message(encode_defunct(text=json.dumps(tx)), signature=signature)
        return str(signer).lower() == self.l1_address.lower()

    # --- the sequencer --------------------------------------------------------------------

    def _execute(self, tx_type: int, tx: dict[str, Any]) -> None:
        with self._lock:
            if tx_type == 9:
                index = next(self._next_sub)
                self.accounts[index] = FakeAccount(index=index, l1_address=self.l1_address)
            elif tx_type == 8:
                self.accounts[int(tx["AccountIndex"])].keys[int(tx["ApiKeyIndex"])] = tx["PubKey"]
            elif tx_type == 12:
                amount = Decimal(tx["Amount"]).scaleb(-6)
                self.accounts[int(tx["FromAccountIndex"])].usdc -= amount
                self.accounts[int(tx["ToAccountIndex"])].usdc += amount
            elif tx_type == 14:
                self._create_order(tx)
            elif tx_type == 15:
                for order in self.orders:
                    if (
                        order["owner_account_index"] == tx["AccountIndex"]
                        and order["market_index"] == tx["MarketIndex"]
                        and tx["Index"] in {order["order_index"], order["client_order_index"]}
                        and order["status"] in {"open", "pending"}
                    ):
                        self._update(order, status="canceled", trigger_status="na")

    def _create_order(self, tx: dict[str, Any]) -> None:
        market = self.markets[int(tx["MarketIndex"])]
        size = Decimal(tx["BaseAmount"]).scaleb(-market["size_decimals"])
        price = Decimal(tx["Price"]).scaleb(-market["price_decimals"])
        trigger = Decimal(tx["TriggerPrice"]).scaleb(-market["price_decimals"])
        order_index = next(self._next_order)
        order: dict[str, Any] = {
            "order_index": order_index,
            "client_order_index": int(tx["ClientOrderIndex"]),
            "order_id": str(order_index),
            "client_order_id": str(tx["ClientOrderIndex"]),
            "market_index": int(tx["MarketIndex"]),
            "owner_account_index": int(tx["AccountIndex"]),
            "initial_base_amount": str(size),
            "price": str(price),
            "nonce": int(tx["Nonce"]),
            "remaining_base_amount": str(size),
            "is_ask": bool(tx["IsAsk"]),
            "base_size": 0,
            "base_price": 0,
            "filled_base_amount": "0",
            "filled_quote_amount": "0",
            "side": "",
            "type": TYPES[int(tx["Type"])],
            "time_in_force": TIME_IN_FORCE[int(tx["TimeInForce"])],
            "reduce_only": bool(tx["ReduceOnly"]),
            "trigger_price": str(trigger),
            "order_expiry": int(tx["OrderExpiry"]),
            "status": "open",
            "trigger_status": "na",
            "trigger_time": 0,
            "parent_order_index": 0,
            "block_height": 88120000 + order_index % 1000,
            "timestamp": int(time.time()),
        }
        self.orders.append(order)
        kind = int(tx["Type"])
        if kind in {STOP_LOSS, TAKE_PROFIT}:
            self._update(order, status="pending", trigger_status="mark-price")
            return
        if kind != MARKET:
            self._update(order)
            return
        bid, ask = self.books[order["market_index"]]
        fill = bid if order["is_ask"] else ask
        account = self.accounts[order["owner_account_index"]]
        margin = size * fill * Decimal(market["min_initial_margin_fraction"]).scaleb(-4)
        if not order["reduce_only"] and (self.refuse_margin or account.usdc < margin):
            self._update(order, status="canceled-margin-not-allowed", remaining_base_amount="0")
            return
        self._fill(order, fill)

    def _fill(self, order: dict[str, Any], price: Decimal) -> None:
        size = Decimal(order["initial_base_amount"])
        account = self.accounts[order["owner_account_index"]]
        held, entry = account.positions.get(order["market_index"], (Decimal(0), Decimal(0)))
        delta = -size if order["is_ask"] else size
        if order["reduce_only"]:
            delta = max(-abs(held), min(abs(held), delta)) if held else Decimal(0)
            delta = delta if (delta < 0) == (held > 0) else Decimal(0)
        filled = abs(delta)
        new = held + delta
        account.positions[order["market_index"]] = (new, price if held == 0 else entry)
        status = "filled" if filled > 0 else "canceled-reduce-only"
        self._update(
            order,
            status=status,
            trigger_status="na",
            filled_base_amount=str(filled),
            filled_quote_amount=str(filled * price),
            remaining_base_amount="0",
        )

    def _update(self, order: dict[str, Any], **changes: Any) -> None:
        order.update(changes, timestamp=int(time.time()))
        account = order["owner_account_index"]
        self.stream.push(
            account,
            {
                "type": "update/account_all_orders",
                "channel": f"account_all_orders:{account}",
                "account": account,
                "orders": {str(order["market_index"]): [dict(order)]},
            },
        )

    def _account_json(self, account: FakeAccount) -> dict[str, Any]:
        positions = []
        for market_id, (size, entry) in account.positions.items():
            market = self.markets[market_id]
            value = abs(size) * self.books[market_id][0]
            positions.append(
                {
                    "market_id": market_id,
                    "symbol": market["symbol"],
                    "initial_margin_fraction": "20.00",
                    "open_order_count": 0,
                    "pending_order_count": 0,
                    "position_tied_order_count": 0,
                    "sign": 1 if size >= 0 else -1,
                    "position": str(abs(size)),
                    "avg_entry_price": str(entry),
                    "position_value": str(value),
                    "unrealized_pnl": "0",
                    "realized_pnl": "0",
                    "liquidation_price": "0",
                    "margin_mode": 0,
                    "allocated_margin": "0",
                }
            )
        return {
            "index": account.index,
            "account_index": account.index,
            "l1_address": account.l1_address,
            "available_balance": str(account.usdc),
            "collateral": str(account.usdc),
            "positions": positions,
        }


class _AccountStream(FakeLighterStream):
    """The fake's WebSocket: order book channels as ``FakeLighterStream``, plus
    ``account_all_orders/{account}`` with an auth token of that account."""

    def __init__(self, fake: FakeLighter) -> None:
        super().__init__()
        self.fake = fake
        self.account_subscribers: dict[int, list[ServerConnection]] = {}

    def push(self, account: int, message: dict[str, Any]) -> None:
        for connection in list(self.account_subscribers.get(account, [])):
            try:
                connection.send(json.dumps(message))
            except Exception:  # noqa: BLE001 - a closed subscriber is dropped
                self.account_subscribers[account].remove(connection)

    def _snapshot(self, connection: ServerConnection, channel: str) -> None:
        name, _, account = channel.partition("/")
        if name != "account_all_orders":
            super()._snapshot(connection, channel)
            return
        auth = next((m.get("auth", "") for m in reversed(self.received) if m.get("channel") == channel), "")
        if not _auth_ok(auth, int(account)):
            connection.send(
                json.dumps({"type": "error", "code": ERROR_INVALID_AUTH[0], "message": ERROR_INVALID_AUTH[1]})
            )
            return
        orders: dict[str, list[dict[str, Any]]] = {}
        for order in self.fake.orders_of(int(account)):
            orders.setdefault(str(order["market_index"]), []).append(order)
        connection.send(
            json.dumps(
                {
                    "type": "subscribed/account_all_orders",
                    "channel": f"account_all_orders:{account}",
                    "account": int(account),
                    "orders": orders,
                }
            )
        )
        self.account_subscribers.setdefault(int(account), []).append(connection)


def _crossed(order: dict[str, Any], price: Decimal) -> bool:
    trigger = Decimal(order["trigger_price"])
    closes_long = order["is_ask"]
    if order["type"].startswith("stop-loss"):
        return price <= trigger if closes_long else price >= trigger
    return price >= trigger if closes_long else price <= trigger


def _auth_ok(token: str, account_index: int) -> bool:
    parts = token.split(":")
    return len(parts) == 4 and parts[1] == str(account_index) and int(parts[0]) > time.time()


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(error: tuple[int, str], status: int = 400) -> Response:
    return _json({"code": error[0], "message": error[1]}, status=status)
