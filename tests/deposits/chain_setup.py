"""A supported chain for deposit tests: the local EVM with test USDC (the settlement token) and
USDT, configured as the ``chains`` provider, and the deposit policy settling on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from demo.localchain.chain import LocalChain
from deposits.app_settings import DEPOSIT_POLICY
from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_set
from tests.chain.config import chains_configured

CONFIRMATIONS = 3


@dataclass
class DepositChain:
    chain: LocalChain
    chain_id: int
    usdc: str
    usdt: str

    @property
    def collection(self) -> str:
        """The platform's collection address, where swaps deliver."""
        return str(self.chain.accounts[9].address)

    def policy(self, **overrides: Any) -> None:
        values = {
            "settlement_chain_id": self.chain_id,
            "settlement_token": self.usdc,
            "collection_address": self.collection,
            **overrides,
        }
        app_setting_set(key=DEPOSIT_POLICY.key, value=values, actor=None)
        app_settings_cache.clear()


@contextmanager
def deposit_chain_configured(
    chain: LocalChain, *, gas_station_key: str | None = None, **chain_options: Any
) -> Iterator[DepositChain]:
    usdc = chain.deploy_token("USDC", 6, 10**18, name="Test USD Coin")
    usdt = chain.deploy_token("USDT", 6, 10**18, name="Test Tether")
    chains = {
        str(chain.chain_id): {
            "name": "Local test chain",
            "rpc_url": chain.rpc_url,
            "confirmations": CONFIRMATIONS,
            "scan_batch_blocks": 5,
            "tokens": {"USDC": {"address": usdc, "decimals": 6}, "USDT": {"address": usdt, "decimals": 6}},
            **chain_options,
        }
    }
    options = {"gas_station_keys": {str(chain.chain_id): gas_station_key} if gas_station_key else {}}
    with chains_configured(chains, options=options):
        setup = DepositChain(chain=chain, chain_id=chain.chain_id, usdc=usdc, usdt=usdt)
        setup.policy()
        try:
            yield setup
        finally:
            app_settings_cache.clear()
