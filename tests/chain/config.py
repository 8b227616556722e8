"""Point the ``chains`` provider at test chains for the length of a ``with`` block."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import override_settings

from providers import registry


def providers_with_chains(
    chains: dict[str, dict[str, Any]], options: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """``settings.PROVIDERS`` with the ``chains`` provider's default options set to ``chains``
    (and ``options``, e.g. ``gas_station_keys``)."""
    providers = copy.deepcopy(settings.PROVIDERS)
    providers["chains"]["options"] = {**providers["chains"]["options"], "chains": chains, **(options or {})}
    return providers


@contextmanager
def chains_configured(
    chains: dict[str, dict[str, Any]], *, options: dict[str, Any] | None = None, **more: Any
) -> Iterator[None]:
    with override_settings(PROVIDERS=providers_with_chains(chains, options), **more):
        registry.reset_cache()
        try:
            yield
        finally:
            registry.reset_cache()
