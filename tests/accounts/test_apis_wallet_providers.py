"""POST /wallets/mpc against local fakes of Privy's and Dynamic's server-wallet APIs."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import override_settings
from eth_utils import to_checksum_address
from werkzeug import Response

from accounts.models import Wallet
from conftest import bearer_client
from providers import registry

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[1] / "contract"
PRIVY_SECRET = "privy-app-secret-do-not-leak"
DYNAMIC_TOKEN = "dyn_" + "x" * 56


def requests_to(server, path: str) -> list:
    """Requests the fake received at ``path`` (a slow handler of an earlier test may still log late)."""
    return [request for request, _ in server.log if request.path == path]


def fixture(vendor: str, name: str) -> dict:
    return json.loads((FIXTURES / vendor / "fixtures" / f"{name}.json").read_text())


@pytest.fixture
def providers_at(httpserver, leak_guard):
    leak_guard.add(PRIVY_SECRET, DYNAMIC_TOKEN)
    catalogue = copy.deepcopy(settings.PROVIDERS)
    catalogue["privy"]["options"].update(
        app_id="privy-app",
        app_secret=PRIVY_SECRET,
        base_url=httpserver.url_for(""),
        timeout=0.5,
        backoff_seconds=0.01,
    )
    catalogue["dynamic"]["options"].update(
        environment_id="env-1",
        api_token=DYNAMIC_TOKEN,
        base_url=httpserver.url_for(""),
        timeout=0.5,
        backoff_seconds=0.01,
    )
    with override_settings(PROVIDERS=catalogue):
        registry.reset_cache()
        yield httpserver
    registry.reset_cache()


def test_privy_wallet_is_created_with_an_idempotency_key_and_stored(user, providers_at):
    providers_at.expect_request("/v1/wallets", method="POST").respond_with_json(fixture("privy", "wallet"))
    response = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "privy"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["address"] == "0xdE78C900ffCAb39FC11Af7F4Ec3b20f3F9C2262D"
    assert response.json()["provider"] == "privy"
    [request] = requests_to(providers_at, "/v1/wallets")
    assert request.json == {"chain_type": "ethereum"}
    assert request.headers["privy-app-id"] == "privy-app"
    assert request.headers["privy-idempotency-key"] == f"marqetfi-{user.pk}-privy-ethereum"
    assert request.headers["Authorization"].startswith("Basic ")
    wallet = Wallet.objects.get()
    assert wallet.provider_wallet_id == "id2tptkqrxd39qo9j423etij"
    assert PRIVY_SECRET not in response.content.decode()
    again = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "privy"}, format="json")
    assert again.status_code == 200
    assert len(requests_to(providers_at, "/v1/wallets")) == 1, (
        "an existing wallet is returned without calling Privy"
    )


def test_a_privy_outage_is_retried_then_succeeds(user, providers_at):
    providers_at.expect_ordered_request("/v1/wallets", method="POST").respond_with_json(
        fixture("privy", "error_internal"), status=500
    )
    providers_at.expect_ordered_request("/v1/wallets", method="POST").respond_with_json(
        fixture("privy", "wallet")
    )
    response = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "privy"}, format="json")
    assert response.status_code == 201, response.content
    attempts = requests_to(providers_at, "/v1/wallets")
    keys = {r.headers["privy-idempotency-key"] for r in attempts}
    assert len(attempts) == 2 and len(keys) == 1, "the retry reuses the idempotency key"


def test_privy_refusing_credentials_is_a_502_and_no_wallet(user, providers_at):
    providers_at.expect_request("/v1/wallets", method="POST").respond_with_json(
        fixture("privy", "error_invalid_credentials"), status=401
    )
    response = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "privy"}, format="json")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "wallet_provider_error"
    assert error["details"] == {"provider": "privy", "provider_status": 401}
    assert PRIVY_SECRET not in response.content.decode()
    assert not Wallet.objects.exists()


def test_a_privy_timeout_is_a_503_and_no_wallet(user, providers_at):
    def slow(request):
        time.sleep(1.0)
        return Response(json.dumps(fixture("privy", "wallet")), content_type="application/json")

    providers_at.expect_request("/v1/wallets", method="POST").respond_with_handler(slow)
    response = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "privy"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "wallet_provider_unavailable"
    assert not Wallet.objects.exists()


def test_dynamic_embedded_wallet_is_created_for_a_verified_email(user, providers_at):
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    providers_at.expect_request("/environments/env-1/waas/create", method="POST").respond_with_json(
        fixture("dynamic", "waas_wallet_created"), status=201
    )
    response = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "dynamic"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["address"] == to_checksum_address("0x4b0897b0513fdc7c541b6d9d7e929c4e5364d2db")
    [request] = requests_to(providers_at, "/environments/env-1/waas/create")
    assert request.json["identifier"] == user.email
    assert request.headers["Authorization"] == f"Bearer {DYNAMIC_TOKEN}"
    assert DYNAMIC_TOKEN not in response.content.decode()


def test_dynamic_without_a_verified_email_is_refused_without_a_call(user, providers_at):
    response = bearer_client(user).post("/api/v1/wallets/mpc", {"provider": "dynamic"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "verified_email_required"
    assert requests_to(providers_at, "/environments/env-1/waas/create") == []
    assert not Wallet.objects.exists()
