"""Sign-In with Ethereum over HTTP, with messages built by the siwe library and signed by real keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import AuthIdentity, User, Wallet
from tests.accounts.conftest import EthWallet, siwe_body, siwe_nonce

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/auth/siwe/verify"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def assert_refused(response, code: str) -> None:
    assert response.status_code in (400, 401), response.content
    assert response.json()["error"]["code"] == code, response.json()
    assert not User.objects.exists(), "a refused sign-in must not create an account"
    assert not Wallet.objects.exists()


def test_nonce_is_fresh_alphanumeric_and_expires(api_client):
    first = api_client.post("/api/v1/auth/siwe/nonce").json()
    second = api_client.post("/api/v1/auth/siwe/nonce").json()
    assert first["nonce"] != second["nonce"]
    assert first["nonce"].isalnum() and len(first["nonce"]) >= 8
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=1) < expires - datetime.now(UTC) <= timedelta(minutes=5, seconds=5)


def test_sign_in_creates_the_account_with_the_address_as_a_wallet(
    api_client, eth_wallet: EthWallet, leak_guard
):
    leak_guard.add(eth_wallet.account.key.hex())
    response = api_client.post(VERIFY, siwe_body(api_client, eth_wallet), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    identity = AuthIdentity.objects.get()
    assert (identity.method, identity.subject) == ("siwe", eth_wallet.address)
    wallet = Wallet.objects.get()
    assert (wallet.kind, wallet.address, str(wallet.user_id)) == (
        "external",
        eth_wallet.address,
        body["user"]["id"],
    )
    again = api_client.post(VERIFY, siwe_body(api_client, eth_wallet), format="json")
    assert again.status_code == 200
    assert again.json()["user"]["id"] == body["user"]["id"]
    assert Wallet.objects.count() == 1


def test_a_replayed_message_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet)
    assert api_client.post(VERIFY, body, format="json").status_code == 201
    User.objects.all().delete()
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_nonce_invalid")


def test_a_nonce_we_did_not_issue_is_refused(api_client, eth_wallet):
    message = eth_wallet.siwe_message("madeUpNonce123")
    assert_refused(
        api_client.post(VERIFY, {"message": message, "signature": eth_wallet.sign(message)}, format="json"),
        "siwe_nonce_invalid",
    )


def test_an_expired_message_is_refused(api_client, eth_wallet):
    now = datetime.now(UTC)
    body = siwe_body(
        api_client,
        eth_wallet,
        issued_at=iso(now - timedelta(minutes=3)),
        expiration_time=iso(now - timedelta(minutes=1)),
    )
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_message_expired")


def test_a_message_issued_long_ago_is_refused(api_client, eth_wallet):
    now = datetime.now(UTC)
    body = siwe_body(api_client, eth_wallet, issued_at=iso(now - timedelta(hours=2)), expiration_time=None)
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_message_expired")


def test_a_message_not_valid_yet_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet, not_before=iso(datetime.now(UTC) + timedelta(minutes=2)))
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_message_not_yet_valid")


def test_a_message_for_another_domain_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet, domain="evil.example")
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_domain_mismatch")


def test_a_message_for_another_uri_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet, uri="https://evil.example/login")
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_uri_mismatch")


def test_a_message_for_another_chain_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet, chain_id=56)
    response = api_client.post(VERIFY, body, format="json")
    assert_refused(response, "siwe_chain_not_allowed")
    assert 42161 in response.json()["error"]["details"]["allowed"]


def test_a_tampered_signature_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet)
    signature = bytearray(bytes.fromhex(body["signature"][2:]))
    signature[10] ^= 0xFF
    body["signature"] = "0x" + signature.hex()
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_invalid_signature")


def test_a_signature_by_another_key_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet)
    body["signature"] = EthWallet().sign(body["message"])
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_invalid_signature")


def test_a_tampered_message_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet)
    body["message"] = body["message"].replace("Sign in to MarqetFi", "Sign in to MarqetFi!")
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_invalid_signature")


def test_a_malformed_message_is_a_400(api_client, eth_wallet):
    nonce = siwe_nonce(api_client)
    response = api_client.post(VERIFY, {"message": f"hello {nonce}", "signature": "0x00"}, format="json")
    assert_refused(response, "siwe_malformed_message")
    missing = api_client.post(VERIFY, {"message": "x"}, format="json")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.marqetfi.com.evil.example/",
        "https://app.marqetfi.com@evil.example/login",
        "https://app.marqetfi.com:8443/login",
        "http://app.marqetfi.com/login",
        "https://evil.example/https://app.marqetfi.com",
    ],
)
def test_a_uri_that_only_starts_like_ours_is_refused(api_client, eth_wallet, uri):
    body = siwe_body(api_client, eth_wallet, uri=uri)
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_uri_mismatch")


@pytest.mark.parametrize(
    "uri", ["https://app.marqetfi.com/", "https://app.marqetfi.com:443/wallet/link?step=2"]
)
def test_any_path_on_our_origin_is_accepted(api_client, eth_wallet, uri):
    body = siwe_body(api_client, eth_wallet, uri=uri)
    assert api_client.post(VERIFY, body, format="json").status_code == 201


@pytest.mark.parametrize(
    "domain", ["app.marqetfi.com.evil.example", "evil.app.marqetfi.com", "app.marqetfi.com:8443"]
)
def test_a_domain_that_is_not_exactly_ours_is_refused(api_client, eth_wallet, domain):
    body = siwe_body(api_client, eth_wallet, domain=domain)
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_domain_mismatch")


@pytest.mark.parametrize("garbage", ["a" * 4096, "0" * 4096, "a." * 2048])
def test_a_long_malformed_message_is_refused_at_once(api_client, garbage):
    """Found by fuzzing the schema: siwe's grammar parser took seconds on such a message."""
    started = time.monotonic()
    response = api_client.post(VERIFY, {"message": garbage, "signature": "0x00"}, format="json")
    elapsed = time.monotonic() - started
    assert_refused(response, "siwe_malformed_message")
    assert elapsed < 0.5, f"a malformed message took {elapsed:.2f} s to refuse"


def test_a_message_requested_over_plain_http_is_refused(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet, scheme="http")
    assert body["message"].startswith("http://app.marqetfi.com wants you")
    assert_refused(api_client.post(VERIFY, body, format="json"), "siwe_scheme_mismatch")


def test_a_message_requested_over_https_is_accepted(api_client, eth_wallet):
    body = siwe_body(api_client, eth_wallet, scheme="https")
    assert api_client.post(VERIFY, body, format="json").status_code == 201
