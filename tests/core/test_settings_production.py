"""Production settings refuse values meant for a development machine."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from marqetfi.core.deploy_checks import DEMO_CREDENTIAL_VARIABLES

MODULE = "marqetfi.settings.production"
BASE_MODULE = "marqetfi.settings.base"
PRODUCTION_ENVIRON = {
    "SECRET_KEY": "production-test-secret-key-" + "x" * 40,
    "FIELD_ENCRYPTION_KEYS": "ZmVybmV0LWtleS1mb3ItcHJvZHVjdGlvbi10ZXN0cyE=",
    "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
}


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Import the production settings afresh under the environment a test sets."""
    for name, value in PRODUCTION_ENVIRON.items():
        monkeypatch.setenv(name, value)
    for name in ("SIWE_DOMAINS", "SIWE_URI_ORIGINS", "SIWE_URI_PREFIXES", *DEMO_CREDENTIAL_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    base = sys.modules[BASE_MODULE]

    def load(**environ: str) -> ModuleType:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        # The base settings read the environment too (EMAIL_BACKEND...): read afresh.
        sys.modules.pop(BASE_MODULE, None)
        sys.modules.pop(MODULE, None)
        return importlib.import_module(MODULE)

    yield load
    sys.modules.pop(MODULE, None)
    sys.modules[BASE_MODULE] = base


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


def test_production_locks_transport_down_and_leaves_the_demo_out(production):
    settings = production()
    assert settings.DEBUG is False
    assert settings.SECURE_SSL_REDIRECT is True
    assert settings.SECURE_REDIRECT_EXEMPT == [r"^api/v1/health$"]
    assert settings.SECURE_HSTS_SECONDS == 31536000
    assert settings.SESSION_COOKIE_SECURE is settings.CSRF_COOKIE_SECURE is True
    assert "demo" not in settings.INSTALLED_APPS


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.mail.backends.console.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
        "django.core.mail.backends.dummy.EmailBackend",
        "django.core.mail.backends.filebased.EmailBackend",
    ],
)
def test_production_refuses_an_email_backend_that_never_delivers(production, backend):
    with pytest.raises(ImproperlyConfigured, match=f"EMAIL_BACKEND is {backend}"):
        production(EMAIL_BACKEND=backend)


@pytest.mark.parametrize("secret_key", ["short", "django-insecure-" + "k" * 60])
def test_production_refuses_a_weak_secret_key(production, secret_key):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be a random value"):
        production(SECRET_KEY=secret_key)


def test_production_refuses_the_development_keys_kept_in_var(production):
    development_key = (django_settings.VAR_DIR / "secret_key").read_text().strip()
    development_fernet = (django_settings.VAR_DIR / "field_encryption_key").read_text().strip()

    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is the development key") as refused:
        production(SECRET_KEY=development_key, FIELD_ENCRYPTION_KEYS=f"new-key,{development_fernet}")
    assert "FIELD_ENCRYPTION_KEYS holds the development key" in str(refused.value)


@pytest.mark.parametrize("variable", DEMO_CREDENTIAL_VARIABLES)
def test_production_refuses_demo_account_passwords(production, variable):
    with pytest.raises(ImproperlyConfigured, match=f"{variable} is set"):
        production(**{variable: "demo-password"})


def test_production_refuses_the_public_development_chain_key(production):
    with pytest.raises(ImproperlyConfigured, match="public Hardhat/Anvil development key"):
        production(
            LIGHTER_L1_PRIVATE_KEY="0xAC0974BEC39A17E36BA4A6B4D238FF944BACB478CBED5EFCAE784D7BF4F2FF80"
        )


def start_production(**environ: str) -> subprocess.CompletedProcess[str]:
    """What every process does first: load the production settings (``django.setup()``)."""
    inherited = {name: value for name, value in os.environ.items() if name not in DEMO_CREDENTIAL_VARIABLES}
    env = {**inherited, **PRODUCTION_ENVIRON, "DJANGO_SETTINGS_MODULE": MODULE, **environ}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_production_process_does_not_start_with_the_console_email_backend():
    refused = start_production(
        EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend", DEMO_ADMIN_PASSWORD="admin"
    )
    started = start_production()

    assert refused.returncode != 0
    assert "ImproperlyConfigured: Production settings refused: EMAIL_BACKEND is" in refused.stderr
    assert "DEMO_ADMIN_PASSWORD is set" in refused.stderr
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "started"
