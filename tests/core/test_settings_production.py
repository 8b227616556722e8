"""Production settings refuse values meant for a development machine."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

MODULE = "marqetfi.settings.production"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Import the production settings afresh under the environment a test sets."""
    monkeypatch.setenv("SECRET_KEY", "production-test-secret-key-" + "x" * 40)
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", "ZmVybmV0LWtleS1mb3ItcHJvZHVjdGlvbi10ZXN0cyE=")
    for name in ("SIWE_DOMAINS", "SIWE_URI_ORIGINS", "SIWE_URI_PREFIXES"):
        monkeypatch.delenv(name, raising=False)

    def load(**environ: str) -> ModuleType:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop(MODULE, None)
        return importlib.import_module(MODULE)

    yield load
    sys.modules.pop(MODULE, None)


def test_production_defaults_accept_sign_in_messages_from_our_https_site_only(production):
    settings = production()
    assert settings.SIWE_DOMAINS == ["app.marqetfi.com"]
    assert settings.SIWE_URI_ORIGINS == ["https://app.marqetfi.com"]


@pytest.mark.parametrize(
    "environ",
    [
        {"SIWE_DOMAINS": "app.marqetfi.com,localhost:8000"},
        {"SIWE_DOMAINS": "127.0.0.1:8000"},
        {"SIWE_DOMAINS": "[::1]:8000"},
        {"SIWE_URI_ORIGINS": "https://app.marqetfi.com,http://app.marqetfi.com"},
        {"SIWE_URI_ORIGINS": "https://localhost:8000"},
        {"SIWE_URI_ORIGINS": "https://app.marqetfi.com/login"},
        {"SIWE_URI_PREFIXES": "http://localhost:8000"},
    ],
)
def test_production_refuses_development_sign_in_origins(production, environ):
    with pytest.raises(ImproperlyConfigured, match="SIWE"):
        production(**environ)
