"""The ``chains`` provider: every supported EVM chain, configured at runtime.

Its options are one JSON object keyed by chain id, edited like any provider configuration
(versioned, audited, rolled back in the admin or ``/api/v1/admin/providers``)::

    {"42161": {"name": "Arbitrum One", "rpc_url": "https://arb1.arbitrum.io/rpc",
               "confirmations": 20, "scan_batch_blocks": 500, "deposits": true,
               "scan_from_block": 250000000,  (optional: where a first scan starts)
               "tokens": {"USDC": {"address": "0xaf88...", "decimals": 6}}}}

An RPC URL that embeds an API key goes in the secret ``rpc_urls`` instead
(``{"42161": "https://arb-mainnet.g.alchemy.com/v2/<key>"}``), which overrides ``rpc_url``.
The secret ``gas_station_keys`` (``{"42161": "0x<private key>"}``) names, per chain, the
platform wallet that sends users' deposit wallets the native coin their first swap needs,
and users' trading wallets the gas and the USDC collateral of trades sent from them
(``token_transfer``).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from django_redis import get_redis_connection
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from redis.exceptions import LockError, RedisError

from providers.base import ChainClient, ChainDirectory, ChainSpec, EvmTransaction, TokenSpec
from providers.chains.evm.client import EvmChainClient
from providers.errors import InvalidProviderConfig, ProviderError, ProviderNotConfigured

DEFAULT_CONFIRMATIONS = 12
DEFAULT_SCAN_BATCH_BLOCKS = 500
DEFAULT_TIMEOUT_SECONDS = 10.0


def _int(value: Any, *, field: str, low: int, high: int) -> int:
    problem = {field: [f"Must be a whole number from {low} to {high}."]}
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidProviderConfig(details=problem) from None
    if not low <= number <= high or isinstance(value, bool):
        raise InvalidProviderConfig(details=problem)
    return number


def chain_specs_parse(chains: Any) -> dict[int, ChainSpec]:
    """The ``chains`` option, validated; ``InvalidProviderConfig`` names the first bad field."""
    if not isinstance(chains, dict):
        raise InvalidProviderConfig(details={"chains": ["An object keyed by chain id."]})
    specs: dict[int, ChainSpec] = {}
    for key, entry in chains.items():
        chain_id = _int(key, field="chains", low=1, high=2**53)
        where = f"chains.{chain_id}"
        if not isinstance(entry, dict):
            raise InvalidProviderConfig(details={where: ["An object."]})
        tokens = []
        raw_tokens = entry.get("tokens") or {}
        if not isinstance(raw_tokens, dict):
            raise InvalidProviderConfig(details={f"{where}.tokens": ["An object keyed by symbol."]})
        for symbol, token in raw_tokens.items():
            address = token.get("address") if isinstance(token, dict) else None
            if not isinstance(address, str) or not is_address(address):
                raise InvalidProviderConfig(details={f"{where}.tokens.{symbol}": ["Needs an EVM address."]})
            decimals = _int(token.get("decimals"), field=f"{where}.tokens.{symbol}.decimals", low=0, high=36)
            checksummed = to_checksum_address(address)
            tokens.append(TokenSpec(symbol=str(symbol), address=checksummed, decimals=decimals))
        specs[chain_id] = ChainSpec(
            chain_id=chain_id,
            name=str(entry.get("name") or f"chain {chain_id}"),
            confirmations=_int(
                entry.get("confirmations", DEFAULT_CONFIRMATIONS),
                field=f"{where}.confirmations",
                low=1,
                high=10_000,
            ),
            scan_batch_blocks=_int(
                entry.get("scan_batch_blocks", DEFAULT_SCAN_BATCH_BLOCKS),
                field=f"{where}.scan_batch_blocks",
                low=1,
                high=100_000,
            ),
            deposits_enabled=bool(entry.get("deposits", True)),
            tokens=tuple(tokens),
            scan_from_block=(
                _int(entry["scan_from_block"], field=f"{where}.scan_from_block", low=0, high=2**62)
                if entry.get("scan_from_block") is not None
                else None
            ),
        )
    return specs


def chain_options_check(options: dict[str, Any]) -> None:
    """Refuse a configuration version the adapter could not be built from."""
    chain_specs_parse(options.get("chains") or {})
    keys = options.get("gas_station_keys") or {}
    if not isinstance(keys, dict):
        raise InvalidProviderConfig(details={"gas_station_keys": ["An object of chain id to private key."]})
    for chain_id, key in keys.items():
        try:
            Account.from_key(key)
        except (ValueError, TypeError):
            raise InvalidProviderConfig(
                details={f"gas_station_keys.{chain_id}": ["Not a private key."]}
            ) from None
    rpc_urls = options.get("rpc_urls") or {}
    if not isinstance(rpc_urls, dict) or not all(isinstance(url, str) for url in rpc_urls.values()):
        raise InvalidProviderConfig(details={"rpc_urls": ["An object of chain id to RPC URL."]})


class EvmChains(ChainDirectory):
    """Clients are built on first use and kept with the adapter, which the registry replaces
    whenever the configuration changes."""

    name = "chains"

    def __init__(
        self, chains: Any = None, rpc_urls: Any = "", timeout: Any = "", gas_station_keys: Any = ""
    ) -> None:
        self._specs = chain_specs_parse(chains or {})
        self._entries: dict[int, dict[str, Any]] = {int(k): v for k, v in (chains or {}).items()}
        urls = rpc_urls if isinstance(rpc_urls, dict) else {}
        self._rpc_urls: dict[int, str] = {int(k): str(v) for k, v in urls.items()}
        self._timeout = float(timeout) if timeout not in ("", None) else DEFAULT_TIMEOUT_SECONDS
        keys = gas_station_keys if isinstance(gas_station_keys, dict) else {}
        self._gas_stations: dict[int, LocalAccount] = {
            int(k): Account.from_key(v) for k, v in keys.items() if v
        }
        self._clients: dict[int, EvmChainClient] = {}
        self._lock = threading.Lock()

    def chain_ids(self) -> list[int]:
        return sorted(self._specs)

    def spec(self, chain_id: int) -> ChainSpec:
        found = self._specs.get(chain_id)
        if found is None:
            raise ProviderNotConfigured(f"evm:{chain_id}", "this chain is not configured")
        return found

    def client(self, chain_id: int) -> ChainClient:
        return self.evm_client(chain_id)

    def evm_client(self, chain_id: int) -> EvmChainClient:
        self.spec(chain_id)
        with self._lock:
            existing = self._clients.get(chain_id)
            if existing is not None:
                return existing
            url = self._rpc_urls.get(chain_id) or str(self._entries.get(chain_id, {}).get("rpc_url") or "")
            if not url:
                raise ProviderNotConfigured(f"evm:{chain_id}", "no RPC configured for this chain")
            timeout = float(self._entries.get(chain_id, {}).get("timeout") or self._timeout)
            client = EvmChainClient(chain_id=chain_id, rpc_url=url, timeout=timeout)
            self._clients[chain_id] = client
            return client

    def gas_station_address(self, chain_id: int) -> str | None:
        station = self._gas_stations.get(chain_id)
        return station.address if station is not None else None

    def gas_topup(self, *, chain_id: int, to_address: str, wei: int) -> str | None:
        """Signed here with the station's key (never logged), one send at a time per chain
        across processes (``_station_send``), so two never take the same nonce."""
        if wei <= 0:
            raise ValueError("a top-up sends a positive amount")
        return self._station_send(chain_id, EvmTransaction(chain_id=chain_id, to=to_address, value=wei))

    def token_transfer(self, *, chain_id: int, token: str, to_address: str, amount_raw: int) -> str | None:
        """An ERC-20 ``transfer`` from the gas station, under the same lock as its top-ups."""
        if amount_raw <= 0:
            raise ValueError("a transfer sends a positive amount")
        if chain_id not in self._gas_stations:
            return None
        data = self.evm_client(chain_id).erc20_transfer_data(to_address=to_address, amount_raw=amount_raw)
        return self._station_send(chain_id, EvmTransaction(chain_id=chain_id, to=token, data=data))

    def _station_send(self, chain_id: int, transaction: EvmTransaction) -> str | None:
        """Sign ``transaction`` with the chain's gas station key and broadcast it; None when the
        chain has no station. Every send of a station holds one Redis lock per chain from the
        nonce read to the broadcast, so two processes never take the same nonce."""
        station = self._gas_stations.get(chain_id)
        if station is None:
            return None
        client = self.evm_client(chain_id)
        lock = get_redis_connection("default").lock(
            f"marqetfi:gas-station:{chain_id}", timeout=60, blocking_timeout=30
        )
        try:
            acquired = lock.acquire()
        except RedisError as exc:
            acquired = False
            cause: Exception | None = exc
        else:
            cause = None
        if not acquired:  # busy or unreachable: nothing was sent
            raise ProviderError(
                self.name,
                f"the gas station of chain {chain_id} is busy or its lock unreachable",
                retryable=True,
            ) from cause
        try:
            unsigned = client.fill_transaction(from_address=station.address, transaction=transaction)
            signed = station.sign_transaction(unsigned)
            return client.send_raw_transaction(bytes(signed.raw_transaction))
        finally:
            with contextlib.suppress(LockError, RedisError):  # expired meanwhile: the send stands
                lock.release()

    def health_check(self) -> None:
        """Every chain with an RPC must answer for its own chain id."""
        failing = []
        for chain_id in self.chain_ids():
            try:
                self.evm_client(chain_id).health_check()
            except ProviderNotConfigured:
                continue
            except ProviderError as exc:
                failing.append(f"{chain_id}: {exc.message}")
        if failing:
            raise ProviderError(self.name, "; ".join(failing), retryable=True)
