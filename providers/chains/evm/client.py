"""``ChainClient`` for any EVM chain, over web3.py's ``HTTPProvider``.

Reads (balances, receipts, ERC-20 transfers, EIP-1271) and, for wallets that sign locally,
what sending needs: ``fill_transaction`` and ``send_raw_transaction``. The RPC URL may embed
an API key (Alchemy, Infura, ...), so it never appears in error messages: requests'
exception texts quote the URL and are not passed on.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, cast

import requests
from eth_typing import ChecksumAddress, HexStr
from eth_utils import keccak
from web3 import HTTPProvider, Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    BlockNotFound,
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.types import FilterParams, LogReceipt, TxParams

from providers.base import (
    ChainClient,
    EvmTransaction,
    NativeTransfer,
    TokenBalance,
    TokenSpec,
    TokenTransfer,
    TransactionReceipt,
    TransactionTransfers,
)
from providers.errors import ProviderError

NATIVE_SYMBOL = "ETH"
NATIVE_DECIMALS = 18

ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "allowance",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "transfer",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
]
# Recipients per eth_getLogs: the topic filter is an OR list, and nodes cap request sizes.
RECIPIENTS_PER_LOG_QUERY = 200

EIP1271_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "isValidSignature",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "magicValue", "type": "bytes4"}],
    }
]
# bytes4(0x1626ba7e) as the ABI returns it: left-aligned in one 32-byte word.
EIP1271_MAGIC_WORD = bytes.fromhex("1626ba7e").ljust(32, b"\0")

# EIP-1474 "limit exceeded": the node's rate limit, worth retrying later.
RPC_LIMIT_EXCEEDED = -32005

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
PLAIN_TRANSFER_GAS = 21_000
# Headroom over eth_estimateGas for contract calls: the state may change between the estimate
# and inclusion, and unused gas is not charged.
GAS_ESTIMATE_MARGIN = Decimal("1.2")
# What nodes answer when the very same signed transaction is already in their pool
# (geth "already known", others "known transaction" / "AlreadyKnown").
_ALREADY_KNOWN = re.compile(r"already\s*known|known transaction", re.IGNORECASE)
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class EvmChainClient(ChainClient):
    """One chain's JSON-RPC endpoint: balances, receipts, ERC-20 transfers, EIP-1271 answers,
    and filling and broadcasting transactions signed elsewhere.

    web3's own retries are off: one call costs at most about ``timeout`` (per connect and
    per read), and callers decide from ``ProviderError.retryable`` whether to try again.
    The endpoint's ``eth_chainId`` is checked once, on first use, so a misconfigured URL
    cannot answer for the wrong chain.
    """

    def __init__(self, chain_id: int, rpc_url: str, timeout: float = 10.0) -> None:
        self.chain_id = chain_id
        self.timeout = timeout
        self.provider_name = f"evm:{chain_id}"
        self._provider = HTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        # A contract answering with an OffchainLookup revert (EIP-3668) would otherwise make
        # web3 fetch URLs of the contract's choosing from our servers.
        self._provider.global_ccip_read_enabled = False
        self._web3 = Web3(self._provider)
        self._chain_id_checked = False

    @property
    def provider(self) -> HTTPProvider:
        """The web3 provider, for ``siwe.SiweMessage.verify(..., provider=...)`` (EIP-1271 fallback).

        The chain id is checked first: the contract at an address on another chain may have
        a different owner.
        """
        self._check_chain_id()
        return self._provider

    @property
    def web3(self) -> Web3:
        """The ``Web3`` instance over this chain's RPC (chain id checked first, as for ``provider``)."""
        self._check_chain_id()
        return self._web3

    def balances(self, *, address: str, tokens: list[TokenSpec]) -> list[TokenBalance]:
        owner = self._checksum(address)
        self._check_chain_id()
        w3 = self._web3
        # One JSON-RPC batch: a single round trip whatever the number of tokens.
        with self._translate_errors(), w3.batch_requests() as batch:
            batch.add(w3.eth.get_balance(owner))
            for token in tokens:
                erc20 = w3.eth.contract(address=self._checksum(token.address), abi=ERC20_ABI)
                batch.add(erc20.functions.balanceOf(owner))
            try:
                raw_amounts = cast(list[int], batch.execute())
            except BadFunctionCallOutput as exc:
                raise ProviderError(
                    self.provider_name,
                    "a token's balanceOf returned no data: is every configured token deployed on this chain?",
                ) from exc
        native = TokenBalance(
            symbol=NATIVE_SYMBOL,
            token_address=None,
            decimals=NATIVE_DECIMALS,
            raw=raw_amounts[0],
            amount=_scaled(raw_amounts[0], NATIVE_DECIMALS),
        )
        return [
            native,
            *(
                TokenBalance(
                    symbol=token.symbol,
                    token_address=self._checksum(token.address),
                    decimals=token.decimals,
                    raw=raw,
                    amount=_scaled(raw, token.decimals),
                )
                for token, raw in zip(tokens, raw_amounts[1:], strict=True)
            ),
        ]

    def is_valid_signature(self, *, address: str, message_hash: bytes, signature: bytes) -> bool:
        """EIP-1271 check, with a raw ``eth_call`` so that "no code" needs no extra request.

        An address without code answers an ``eth_call`` with empty data, which fails the
        comparison. Like OpenZeppelin's ``SignatureChecker``, the first 32 bytes of the answer
        must be the padded magic value: a contract whose fallback echoes its calldata would
        otherwise pass, since the magic value is the function's own selector.
        """
        if len(message_hash) != 32:
            raise ValueError("message_hash must be 32 bytes")
        contract = self._checksum(address)
        self._check_chain_id()
        wallet = self._web3.eth.contract(address=contract, abi=EIP1271_ABI)
        data = wallet.encode_abi("isValidSignature", args=[message_hash, signature])
        with self._translate_errors():
            try:
                answer = self._web3.eth.call({"to": contract, "data": data})
            except ContractLogicError:
                return False
        return bytes(answer[:32]) == EIP1271_MAGIC_WORD

    def health_check(self) -> None:
        """``eth_chainId`` must be the configured chain and ``eth_blockNumber`` must answer.

        Both are asked on every probe (the chain id is not taken from the first-use check):
        an RPC URL pointed at another network after startup is caught here.
        """
        with self._translate_errors():
            served = self._web3.eth.chain_id
            self._web3.eth.get_block_number()
        self._require_chain_id(served)
        self._chain_id_checked = True

    def block_number(self) -> int:
        self._check_chain_id()
        with self._translate_errors():
            return int(self._web3.eth.get_block_number())

    def receipt(self, *, tx_hash: str) -> TransactionReceipt | None:
        """The receipt, or None while the node knows no mined transaction with ``tx_hash``.

        ``confirmations`` counts the receipt's block (1 when it is the latest). It never drops
        below 1: behind a load balancer, the node answering ``eth_blockNumber`` may lag the one
        that had the receipt.
        """
        wanted = _tx_hash(tx_hash)
        self._check_chain_id()
        with self._translate_errors():
            try:
                found = self._web3.eth.get_transaction_receipt(wanted)
            except TransactionNotFound:
                return None
            if found.get("blockNumber") is None:
                return None
            latest = int(self._web3.eth.get_block_number())
        mined_in = int(found["blockNumber"])
        to_address = found.get("to")
        return TransactionReceipt(
            tx_hash=_hex(found["transactionHash"]),
            block_number=mined_in,
            success=found.get("status") == 1,
            from_address=self._checksum(found["from"]),
            to_address=self._checksum(to_address) if to_address else None,
            confirmations=max(latest - mined_in + 1, 1),
            block_hash=_hex(found["blockHash"]) if found.get("blockHash") is not None else "",
        )

    def token_transfers_to(
        self, *, address: str, tokens: list[str], from_block: int, to_block: int
    ) -> list[TokenTransfer]:
        """One ``eth_getLogs`` for ``Transfer`` events of ``tokens`` whose ``to`` is ``address``.

        Ordered by block, then log index. An empty ``tokens`` list or a range with
        ``from_block > to_block`` finds nothing without asking the node (an empty address
        filter would match every contract). The caller bounds the range: hosted RPCs refuse
        ranges or answers above their limits, and that refusal is raised as a ProviderError.
        Logs of a reorganised block (``removed``) and ``Transfer`` events that are not ERC-20
        shaped (ERC-721 indexes a fourth topic) are skipped.
        """
        return self.token_transfers(
            tokens=tokens, recipients=[address], from_block=from_block, to_block=to_block
        )

    def token_transfers(
        self, *, tokens: list[str], recipients: list[str], from_block: int, to_block: int
    ) -> list[TokenTransfer]:
        """``Transfer`` events of ``tokens`` to any of ``recipients``: one ``eth_getLogs`` per
        ``RECIPIENTS_PER_LOG_QUERY`` recipients (the ``to`` topic is an OR list)."""
        wanted_recipients = [self._checksum(address) for address in recipients]
        contracts = [self._checksum(token) for token in tokens]
        if from_block < 0 or to_block < 0:
            raise ValueError("block numbers cannot be negative")
        if not contracts or not wanted_recipients or from_block > to_block:
            return []
        self._check_chain_id()
        wanted = set(contracts)
        recipient_set = set(wanted_recipients)
        transfers: list[TokenTransfer] = []
        for start in range(0, len(wanted_recipients), RECIPIENTS_PER_LOG_QUERY):
            chunk = wanted_recipients[start : start + RECIPIENTS_PER_LOG_QUERY]
            topics = [HexStr("0x" + address[2:].lower().rjust(64, "0")) for address in chunk]
            query: FilterParams = {
                "fromBlock": from_block,
                "toBlock": to_block,
                "address": contracts,
                "topics": [HexStr(TRANSFER_TOPIC), None, topics if len(topics) > 1 else topics[0]],
            }
            with self._translate_errors():
                logs = self._web3.eth.get_logs(query)
            transfers.extend(
                transfer
                for log in logs
                if (transfer := self._transfer(log, recipients=recipient_set, contracts=wanted)) is not None
            )
        return sorted(transfers, key=lambda t: (t.block_number, t.log_index))

    def native_transfers(
        self, *, recipients: list[str], from_block: int, to_block: int
    ) -> list[NativeTransfer]:
        """Reads each block of the range with its transactions (one JSON-RPC batch), then the
        receipts of the candidates (a failed transaction moves no value). Contract-internal
        transfers (a multisig paying out) are not seen: that needs a tracing node."""
        if from_block < 0 or to_block < 0:
            raise ValueError("block numbers cannot be negative")
        wanted = {self._checksum(address) for address in recipients}
        if not wanted or from_block > to_block:
            return []
        self._check_chain_id()
        w3 = self._web3
        with self._translate_errors(), w3.batch_requests() as batch:
            for number in range(from_block, to_block + 1):
                batch.add(w3.eth.get_block(number, full_transactions=True))
            blocks = cast(list[Any], batch.execute())
        candidates: list[tuple[int, Any]] = []
        for block in blocks:
            if block is None:
                continue
            for tx in block.get("transactions") or []:
                to_address = tx.get("to")
                if to_address and int(tx.get("value") or 0) > 0 and self._checksum(to_address) in wanted:
                    candidates.append((int(block["number"]), tx))
        if not candidates:
            return []
        with self._translate_errors(), w3.batch_requests() as batch:
            for _, tx in candidates:
                batch.add(w3.eth.get_transaction_receipt(tx["hash"]))
            receipts = cast(list[Any], batch.execute())
        return [
            NativeTransfer(
                tx_hash=_hex(tx["hash"]),
                block_number=number,
                from_address=self._checksum(tx["from"]),
                to_address=self._checksum(tx["to"]),
                raw=int(tx["value"]),
            )
            for (number, tx), receipt in zip(candidates, receipts, strict=True)
            if receipt is not None and receipt.get("status") == 1
        ]

    def transaction_transfers(self, *, tx_hash: str) -> TransactionTransfers | None:
        found = self.receipt(tx_hash=tx_hash)
        if found is None:
            return None
        with self._translate_errors():
            try:
                tx = self._web3.eth.get_transaction(_tx_hash(tx_hash))
                full = self._web3.eth.get_transaction_receipt(_tx_hash(tx_hash))
            except TransactionNotFound:
                return None
        native = None
        if found.success and found.to_address and int(tx.get("value") or 0) > 0:
            native = NativeTransfer(
                tx_hash=found.tx_hash,
                block_number=found.block_number,
                from_address=found.from_address,
                to_address=found.to_address,
                raw=int(tx["value"]),
            )
        transfers = [t for log in full.get("logs") or [] if (t := self._any_transfer(log)) is not None]
        return TransactionTransfers(receipt=found, native=native, token_transfers=transfers)

    def block_hash(self, *, number: int) -> str | None:
        self._check_chain_id()
        with self._translate_errors():
            try:
                block = self._web3.eth.get_block(number)
            except BlockNotFound:
                return None
        return _hex(block["hash"]) if block and block.get("hash") is not None else None

    def transaction_count(self, *, address: str, block: str = "latest") -> int:
        if block not in ("latest", "pending"):
            raise ValueError("block is latest or pending")
        self._check_chain_id()
        with self._translate_errors():
            return int(self._web3.eth.get_transaction_count(self._checksum(address), block))  # type: ignore[arg-type]

    def transaction_by_nonce(
        self, *, sender: str, nonce: int, from_block: int
    ) -> tuple[str, str | None] | None:
        """Reads the blocks from ``from_block`` to the head (batches of 100) with their transactions."""
        wanted = self._checksum(sender)
        self._check_chain_id()
        w3 = self._web3
        with self._translate_errors():
            head = int(w3.eth.get_block_number())
        for start in range(max(from_block, 0), head + 1, 100):
            with self._translate_errors(), w3.batch_requests() as batch:
                for number in range(start, min(start + 100, head + 1)):
                    batch.add(w3.eth.get_block(number, full_transactions=True))
                blocks = cast(list[Any], batch.execute())
            for block in blocks:
                for tx in (block or {}).get("transactions") or []:
                    if self._checksum(tx["from"]) == wanted and int(tx["nonce"]) == nonce:
                        to_address = tx.get("to")
                        return _hex(tx["hash"]), self._checksum(to_address) if to_address else None
        return None

    def erc20_allowance(self, *, token: str, owner: str, spender: str) -> int:
        self._check_chain_id()
        erc20 = self._web3.eth.contract(address=self._checksum(token), abi=ERC20_ABI)
        with self._translate_errors():
            return int(erc20.functions.allowance(self._checksum(owner), self._checksum(spender)).call())

    def erc20_approve_data(self, *, spender: str, amount_raw: int) -> str:
        """Calldata of ``approve(spender, amount_raw)``."""
        erc20 = self._web3.eth.contract(abi=ERC20_ABI)
        return str(erc20.encode_abi("approve", args=[self._checksum(spender), amount_raw]))

    def erc20_transfer_data(self, *, to_address: str, amount_raw: int) -> str:
        """Calldata of ``transfer(to_address, amount_raw)``."""
        erc20 = self._web3.eth.contract(abi=ERC20_ABI)
        return str(erc20.encode_abi("transfer", args=[self._checksum(to_address), amount_raw]))

    def fill_transaction(self, *, from_address: str, transaction: EvmTransaction) -> dict[str, Any]:
        """The unsigned transaction ``from_address`` would send, ready for eth-account's
        ``sign_transaction``: chain id, the pending nonce, the gas limit (estimated when
        ``transaction.gas_limit`` is None) and fees.

        Fees are EIP-1559 (``maxFeePerGas`` = 2 x base fee + priority fee, which stays valid
        through several full blocks) when the latest block has a base fee, else a legacy
        ``gasPrice``. An estimate that reverts is a non-retryable ProviderError.
        """
        if transaction.chain_id != self.chain_id:
            raise ValueError(f"the transaction is for chain {transaction.chain_id}, not {self.chain_id}")
        if transaction.value < 0:
            raise ValueError("value cannot be negative")
        if transaction.gas_limit is not None and transaction.gas_limit <= 0:
            raise ValueError("gas_limit must be positive")
        if not _HEX_DATA.fullmatch(transaction.data):
            raise ValueError("data must be 0x-prefixed hex bytes")
        sender, recipient = self._checksum(from_address), self._checksum(transaction.to)
        fields: dict[str, Any] = {
            "chainId": self.chain_id,
            "to": recipient,
            "value": transaction.value,
            "data": transaction.data,
        }
        self._check_chain_id()
        w3 = self._web3
        with self._translate_errors():
            fields["nonce"] = int(w3.eth.get_transaction_count(sender, "pending"))
            fields["gas"] = transaction.gas_limit or self._estimate_gas(
                cast(TxParams, {**fields, "from": sender})
            )
            base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
            if base_fee is None:
                fields["gasPrice"] = int(w3.eth.gas_price)
            else:
                # web3 falls back to eth_feeHistory (with a warning) on nodes without this method.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    priority_fee = int(w3.eth.max_priority_fee)
                fields["maxPriorityFeePerGas"] = priority_fee
                fields["maxFeePerGas"] = 2 * int(base_fee) + priority_fee
        return fields

    def max_fee_per_gas(self) -> int:
        """The most a transaction filled now may pay per gas (as ``fill_transaction`` sets it):
        what a sender must hold per unit of gas limit, on top of the value it sends."""
        self._check_chain_id()
        w3 = self._web3
        with self._translate_errors():
            base_fee = w3.eth.get_block("latest").get("baseFeePerGas")
            if base_fee is None:
                return int(w3.eth.gas_price)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                priority_fee = int(w3.eth.max_priority_fee)
        return 2 * int(base_fee) + priority_fee

    def send_raw_transaction(self, raw: bytes) -> str:
        """Broadcast a signed transaction; returns its 0x-hex hash.

        Sending the same bytes again is harmless (same hash; a node that already has it says
        so, which counts as success), so the hash is known before the node answers. When the
        node gives no definite answer (timeout, dropped connection, 5xx, garbage) the
        transaction may or may not be in its pool: that error is not retryable and names the
        hash to look up.
        """
        expected = "0x" + keccak(raw).hex()
        self._check_chain_id()
        try:
            with self._translate_errors():
                try:
                    sent = self._web3.eth.send_raw_transaction(raw)
                except Web3RPCError as exc:
                    if _ALREADY_KNOWN.search(exc.message or ""):
                        return expected
                    raise
        except ProviderError as exc:
            # A JSON-RPC error or a 4xx is the node refusing; anything else leaves the outcome open.
            if exc.response is None and (exc.status_code is None or exc.status_code >= 500):
                raise ProviderError(
                    self.provider_name,
                    f"{exc.message}; transaction {expected} may have been broadcast: "
                    "look its receipt up before sending again",
                    status_code=exc.status_code,
                ) from exc
            raise
        return _hex(sent)

    def _estimate_gas(self, call: TxParams) -> int:
        try:
            estimate = int(self._web3.eth.estimate_gas(call))
        except ContractLogicError as exc:
            raise ProviderError(
                self.provider_name, f"the transaction would revert: {exc.message or exc}"
            ) from exc
        if estimate <= PLAIN_TRANSFER_GAS:
            return estimate
        return int((estimate * GAS_ESTIMATE_MARGIN).to_integral_value(rounding="ROUND_CEILING"))

    def _transfer(
        self, log: LogReceipt, *, recipients: set[ChecksumAddress], contracts: set[ChecksumAddress]
    ) -> TokenTransfer | None:
        transfer = self._any_transfer(log)
        if transfer is None or transfer.token_address not in contracts:
            return None
        return transfer if transfer.to_address in recipients else None

    def _any_transfer(self, log: LogReceipt) -> TokenTransfer | None:
        """The ERC-20 ``Transfer`` a log records, or None for any other log (ERC-721 included)."""
        topics = log.get("topics") or []
        data = bytes(log.get("data") or b"")
        if log.get("removed") or len(topics) != 3 or len(data) != 32 or _hex(topics[0]) != TRANSFER_TOPIC:
            return None
        token = self._checksum(log["address"])
        to_address = self._checksum("0x" + bytes(topics[2])[-20:].hex())
        return TokenTransfer(
            tx_hash=_hex(log["transactionHash"]),
            log_index=int(log["logIndex"]),
            block_number=int(log["blockNumber"]),
            token_address=token,
            from_address=self._checksum("0x" + bytes(topics[1])[-20:].hex()),
            to_address=to_address,
            raw=int.from_bytes(data, "big"),
        )

    def _check_chain_id(self) -> None:
        if self._chain_id_checked:
            return
        with self._translate_errors():
            served = self._web3.eth.chain_id
        self._require_chain_id(served)
        self._chain_id_checked = True

    def _require_chain_id(self, served: int) -> None:
        if served != self.chain_id:
            raise ProviderError(
                self.provider_name, f"the RPC serves chain id {served}, not the configured {self.chain_id}"
            )

    def _checksum(self, address: str) -> ChecksumAddress:
        if not Web3.is_address(address):
            raise ValueError(f"not an EVM address: {address!r}")
        return Web3.to_checksum_address(address)

    def eth_call(self, *, to: str, data: str) -> bytes:
        """``eth_call`` at the latest block; a revert is a non-retryable ProviderError."""
        self._check_chain_id()
        with self._translate_errors():
            return bytes(self.web3.eth.call({"to": self._checksum(to), "data": HexStr(data)}))

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        name = self.provider_name
        try:
            yield
        except requests.Timeout as exc:
            raise ProviderError(
                name, f"the RPC did not answer within {self.timeout}s", retryable=True
            ) from exc
        except requests.ConnectionError as exc:
            raise ProviderError(name, "cannot connect to the RPC", retryable=True) from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            raise ProviderError(
                name,
                f"the RPC answered HTTP {status}",
                status_code=status,
                retryable=status is None or status == 429 or status >= 500,
            ) from exc
        except requests.RequestException as exc:
            raise ProviderError(name, f"the RPC request failed ({type(exc).__name__})") from exc
        except ContractLogicError as exc:
            raise ProviderError(name, f"the call reverted: {exc.message or exc}") from exc
        except Web3RPCError as exc:
            error = (exc.rpc_response or {}).get("error")
            code = error.get("code") if isinstance(error, dict) else None
            raise ProviderError(
                name,
                f"JSON-RPC error {code}: {exc.message}",
                response=exc.rpc_response,
                retryable=code == RPC_LIMIT_EXCEEDED,
            ) from exc
        except json.JSONDecodeError as exc:
            raise ProviderError(name, "the RPC answered something that is not JSON") from exc
        except Web3Exception as exc:
            raise ProviderError(name, f"unexpected RPC answer: {exc}") from exc


def _scaled(raw: int, decimals: int) -> Decimal:
    return Decimal(raw).scaleb(-decimals)


def _hex(value: bytes | str) -> str:
    """A hash as lowercase 0x-hex, whether web3 gave bytes (HexBytes) or a string."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _tx_hash(value: str) -> HexStr:
    if not _TX_HASH.fullmatch(value):
        raise ValueError(f"not a transaction hash: {value!r}")
    return HexStr(value.lower())
