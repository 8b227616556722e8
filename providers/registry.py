"""Builds provider adapters by name from the provider's active configuration.

``settings.PROVIDERS`` says which providers exist (kind, adapter class, default options);
the active ``ProviderConfig`` version overrides the options at runtime. Adapters are cached
per process and rebuilt when any configuration or enabled flag changes: the change bumps a
generation counter in Redis that every process checks about once a second. No import-time
self-registration.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from marqetfi.core.runtime import Generation
from providers.base import (
    ChainClient,
    ChainDirectory,
    ChainSpec,
    ProviderAdapter,
    SwapProvider,
    TokenSpec,
    Venue,
    WalletProvider,
)
from providers.errors import ProviderNotConfigured
from providers.models import Provider
from providers.selectors import active_config_options

config_generation = Generation("providers")


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.adapters: dict[str, ProviderAdapter] = {}
        self.options: dict[str, dict[str, Any]] = {}
        self.enabled: dict[str, bool] = {}


_cache = _Cache()


def _fresh_cache() -> _Cache:
    """The process cache, emptied (and old adapters closed) when the generation moved on."""
    generation = config_generation.current()
    with _cache.lock:
        if _cache.generation != generation:
            for adapter in _cache.adapters.values():
                adapter.close()
            _cache.adapters, _cache.options, _cache.enabled = {}, {}, {}
            _cache.generation = generation
    return _cache


def reset_cache() -> None:
    """Forget every adapter in this process (tests; settings changed in place)."""
    with _cache.lock:
        for adapter in _cache.adapters.values():
            adapter.close()
        _cache.adapters, _cache.options, _cache.enabled = {}, {}, {}
        _cache.generation = None


def provider_names(kind: str | None = None) -> list[str]:
    return [name for name, entry in settings.PROVIDERS.items() if kind is None or entry["kind"] == kind]


def provider_kind(name: str) -> str:
    entry = settings.PROVIDERS.get(name)
    if entry is None:
        raise ProviderNotConfigured(name, "unknown provider")
    return str(entry["kind"])


def secret_fields(name: str) -> list[str]:
    return list(settings.PROVIDERS.get(name, {}).get("secret_fields", []))


def provider_enabled(name: str) -> bool:
    cache = _fresh_cache()
    if name not in cache.enabled:
        row = Provider.objects.filter(name=name).values_list("enabled", flat=True).first()
        cache.enabled[name] = True if row is None else bool(row)
    return cache.enabled[name]


def provider_options(name: str) -> dict[str, Any]:
    """Default options from settings, overridden by the active configuration version."""
    cache = _fresh_cache()
    if name not in cache.options:
        entry = settings.PROVIDERS.get(name)
        if entry is None:
            raise ProviderNotConfigured(name, "unknown provider")
        cache.options[name] = {**entry.get("options", {}), **active_config_options(name)}
    return dict(cache.options[name])


def missing_options(name: str) -> list[str]:
    """Options that are required but empty in the current configuration."""
    options = provider_options(name)
    return sorted(
        k for k, v in options.items() if v in ("", None) and k not in settings.PROVIDER_OPTIONAL_OPTIONS
    )


def adapter(name: str) -> ProviderAdapter:
    """The adapter for ``name`` built from its current configuration (cached per process)."""
    cache = _fresh_cache()
    with cache.lock:
        existing = cache.adapters.get(name)
    if existing is not None:
        return existing
    if not provider_enabled(name):
        raise ProviderNotConfigured(name, "switched off by an operator")
    missing = missing_options(name)
    if missing:
        raise ProviderNotConfigured(name, f"not configured (missing {', '.join(missing)})")
    cls = import_string(settings.PROVIDERS[name]["class"])
    built: ProviderAdapter = cls(**provider_options(name))
    with cache.lock:
        cache.adapters.setdefault(name, built)
        return cache.adapters[name]


def venue(name: str) -> Venue:
    """The venue adapter for ``name``; ``ProviderNotConfigured`` if ``name`` is not a venue
    (or cannot be built, as ``adapter``)."""
    if provider_kind(name) != "venue":
        raise ProviderNotConfigured(name, "not a venue")
    built = adapter(name)
    if not isinstance(built, Venue):
        raise ProviderNotConfigured(name, "not a venue")
    return built


def wallet_provider_names() -> list[str]:
    return provider_names("wallet")


def wallet_provider(name: str) -> WalletProvider:
    if provider_kind(name) != "wallet":
        raise ProviderNotConfigured(name, "not a wallet provider")
    built = adapter(name)
    assert isinstance(built, WalletProvider)
    return built


def swap_provider(name: str = "lifi") -> SwapProvider:
    """The swap adapter for ``name``; ``ProviderNotConfigured`` if it is not a swap provider
    (or cannot be built, as ``adapter``)."""
    if provider_kind(name) != "swap":
        raise ProviderNotConfigured(name, "not a swap provider")
    built = adapter(name)
    if not isinstance(built, SwapProvider):
        raise ProviderNotConfigured(name, "not a swap provider")
    return built


# --- EVM chains (the ``chains`` provider's runtime configuration) -------------------------

CHAINS_PROVIDER = "chains"


def chain_directory() -> ChainDirectory:
    built = adapter(CHAINS_PROVIDER)
    if not isinstance(built, ChainDirectory):
        raise ProviderNotConfigured(CHAINS_PROVIDER, "not a chain directory")
    return built


def configured_chain_ids() -> list[int]:
    """Every configured chain, or none while the ``chains`` provider is switched off."""
    try:
        return chain_directory().chain_ids()
    except ProviderNotConfigured:
        return []


def chain_spec(chain_id: int) -> ChainSpec:
    return chain_directory().spec(chain_id)


def chain_name(chain_id: int) -> str:
    try:
        return chain_spec(chain_id).name
    except ProviderNotConfigured:
        return f"chain {chain_id}"


def chain_tokens(chain_id: int) -> list[TokenSpec]:
    try:
        return list(chain_spec(chain_id).tokens)
    except ProviderNotConfigured:
        return []


def chain_client(chain_id: int) -> ChainClient:
    return chain_directory().client(chain_id)
