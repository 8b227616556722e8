"""Reads of provider rows that several places need (the registry, the config services)."""

from __future__ import annotations

import json
from typing import Any

from marqetfi.core import crypto
from providers.models import ProviderConfig


def secrets_decrypt(token: str) -> dict[str, Any]:
    return json.loads(crypto.decrypt(token)) if token else {}


def active_config_options(name: str) -> dict[str, Any]:
    """The active version's options with secrets decrypted (for the registry only)."""
    config = ProviderConfig.objects.filter(provider__name=name, is_active=True).first()
    if config is None:
        return {}
    return {**config.settings, **secrets_decrypt(config.secrets_encrypted)}
