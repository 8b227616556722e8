"""Builds provider adapters by name from settings (dotted class path + options).

No import-time self-registration: ``settings.WALLET_PROVIDERS`` and ``settings.EVM_CHAINS``
say what exists. (Runtime, versioned configuration from the admin replaces these settings
as the provider layer grows.)
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from providers.base import ChainClient, TokenSpec, WalletProvider
from providers.errors import ProviderError


class ProviderNotConfigured(ProviderError):
    pass


def wallet_provider_names() -> list[str]:
    return list(settings.WALLET_PROVIDERS)


def wallet_provider(name: str) -> WalletProvider:
    entry = settings.WALLET_PROVIDERS.get(name)
    if entry is None:
        raise ProviderNotConfigured(name, "unknown wallet provider")
    options = dict(entry.get("options", {}))
    missing = [key for key, value in options.items() if value in ("", None)]
    if missing:
        raise ProviderNotConfigured(name, f"not configured (missing {', '.join(sorted(missing))})")
    cls = import_string(entry["class"])
    provider: WalletProvider = cls(**options)
    return provider


def configured_chain_ids() -> list[int]:
    return sorted(int(chain_id) for chain_id in settings.EVM_CHAINS)


def chain_name(chain_id: int) -> str:
    return str(settings.EVM_CHAINS.get(str(chain_id), {}).get("name", f"chain {chain_id}"))


def chain_tokens(chain_id: int) -> list[TokenSpec]:
    tokens = settings.EVM_CHAINS.get(str(chain_id), {}).get("tokens", {})
    return [
        TokenSpec(symbol=symbol, address=spec["address"], decimals=int(spec["decimals"]))
        for symbol, spec in tokens.items()
    ]


def chain_client(chain_id: int) -> ChainClient:
    entry = settings.EVM_CHAINS.get(str(chain_id))
    if not entry or not entry.get("rpc_url"):
        raise ProviderNotConfigured(f"evm:{chain_id}", "no RPC configured for this chain")
    from providers.chains.evm.client import EvmChainClient

    return EvmChainClient(
        chain_id=chain_id, rpc_url=entry["rpc_url"], timeout=float(entry.get("timeout", 10))
    )
