from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings
from eth_account import Account
from eth_account.messages import encode_defunct
from pytest_httpserver import HTTPServer

from accounts.verification import tokens as token_verification
from marqetfi.core.logging import JsonFormatter, RedactingFilter, RequestContextFilter
from tests.accounts.identity_providers import SECRETS_IN_PLAY, IdentityProviders

with __import__("warnings").catch_warnings():
    __import__("warnings").filterwarnings("ignore", message="rule '.*' redefines")
    from siwe import SiweMessage

SIWE_DOMAIN = "app.marqetfi.com"
SIWE_URI = "https://app.marqetfi.com/login"


@pytest.fixture
def idp(httpserver: HTTPServer) -> Iterator[IdentityProviders]:
    providers = IdentityProviders(httpserver)
    providers.serve()
    token_verification._jwks_client.cache_clear()
    with override_settings(OIDC_PROVIDERS=providers.settings()):
        yield providers
    token_verification._jwks_client.cache_clear()


class EthWallet:
    """A wallet app: a real secp256k1 key that builds and signs EIP-4361 messages with the siwe library."""

    def __init__(self) -> None:
        self.account = Account.create()
        self.address: str = self.account.address
        SECRETS_IN_PLAY.add(self.account.key.hex().removeprefix("0x"))

    def siwe_message(self, nonce: str, **overrides: Any) -> str:
        now = datetime.now(UTC)
        fields: dict[str, Any] = {
            "domain": SIWE_DOMAIN,
            "address": self.address,
            "statement": "Sign in to MarqetFi",
            "uri": SIWE_URI,
            "version": "1",
            "chain_id": 42161,
            "nonce": nonce,
            "issued_at": now.isoformat().replace("+00:00", "Z"),
            "expiration_time": (now + timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        }
        fields.update(overrides)
        return SiweMessage(**fields).prepare_message()

    def sign(self, message: str) -> str:
        return "0x" + self.account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix(
            "0x"
        )


@pytest.fixture
def eth_wallet() -> EthWallet:
    return EthWallet()


def siwe_nonce(client: Any) -> str:
    response = client.post("/api/v1/auth/siwe/nonce")
    assert response.status_code == 200, response.content
    return str(response.json()["nonce"])


def siwe_body(client: Any, wallet: EthWallet, **overrides: Any) -> dict[str, str]:
    message = wallet.siwe_message(siwe_nonce(client), **overrides)
    return {"message": message, "signature": wallet.sign(message)}


class LeakGuard:
    """Collects every log line written during a test, formatted as production formats them,
    and fails the test if a secret the test registered shows up in any of them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setLevel(logging.DEBUG)
        self.handler.addFilter(RequestContextFilter())
        self.handler.addFilter(RedactingFilter())
        self.handler.setFormatter(JsonFormatter())
        self.secrets: set[str] = set()

    def add(self, *secrets: str) -> None:
        self.secrets.update(s for s in secrets if s)

    def leaked(self) -> list[str]:
        output = self.stream.getvalue()
        return [s for s in self.secrets | SECRETS_IN_PLAY if s in output]


@pytest.fixture(autouse=True)
def leak_guard() -> Iterator[LeakGuard]:
    SECRETS_IN_PLAY.clear()
    guard = LeakGuard()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(guard.handler)
    root.setLevel(logging.DEBUG)
    try:
        yield guard
    finally:
        root.removeHandler(guard.handler)
        root.setLevel(previous_level)
    leaked = guard.leaked()
    assert not leaked, f"secrets written to the logs: {[s[:12] + '...' for s in leaked]}"
