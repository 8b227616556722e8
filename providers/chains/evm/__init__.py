"""EVM chains read over JSON-RPC (web3.py)."""

from providers.chains.evm.client import EvmChainClient

__all__ = ["EvmChainClient"]
