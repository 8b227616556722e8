"""PrivyWalletProvider against a fake Privy answering in Privy's documented format."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import WalletInfo
from providers.errors import ProviderError
from providers.wallets.privy.adapter import PrivyWalletProvider

FIXTURES = Path(__file__).parent / "fixtures"
APP_ID = "clp8k2x0e00fnl70fq3a1b2c3"
APP_SECRET = "4Zq8mR1vT6yB9wE2kH5nJ3pL7sD0fG8aQ1xC4vB7nM2"
WALLET_ID = "id2tptkqrxd39qo9j423etij"
IDEMPOTENCY_KEY = "wallet-create:3f0c9a52-8d1e-4b7a-9c61-2e5f7d8a4b10"
EXPECTED = WalletInfo(
    provider="privy",
    provider_wallet_id=WALLET_ID,
    address="0xdE78C900ffCAb39FC11Af7F4Ec3b20f3F9C2262D",
    chain_type="ethereum",
)

MakeProvider = Callable[..., PrivyWalletProvider]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_no_secret(error: ProviderError) -> None:
    basic = base64.b64encode(f"{APP_ID}:{APP_SECRET}".encode()).decode()
    for text in (str(error), repr(error.response)):
        assert APP_SECRET not in text and basic not in text


@pytest.fixture
def make_provider(httpserver: HTTPServer) -> Iterator[MakeProvider]:
    providers: list[PrivyWalletProvider] = []

    def make(base_url: str | None = None, **options: Any) -> PrivyWalletProvider:
        options.setdefault("timeout", 2.0)
        options.setdefault("backoff_seconds", 0.001)
        provider = PrivyWalletProvider(
            app_id=APP_ID, app_secret=APP_SECRET, base_url=base_url or httpserver.url_for("/"), **options
        )
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[HTTPServer]:
    """Threaded, so that a handler still sleeping after its client gave up blocks no one."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def create(provider: PrivyWalletProvider) -> WalletInfo:
    return provider.create_wallet(
        owner_ref="7d4f9c1e-0b2a-4e8d-a6f3-5c9b1d2e3f40",
        chain_type="ethereum",
        idempotency_key=IDEMPOTENCY_KEY,
    )


def test_create_wallet_sends_the_documented_request_and_maps_the_wallet(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request("/v1/wallets", method="POST").respond_with_json(fixture("wallet.json"))

    assert create(make_provider()) == EXPECTED

    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.authorization is not None
    assert (request.authorization.type, request.authorization.username, request.authorization.password) == (
        "basic",
        APP_ID,
        APP_SECRET,
    )
    assert request.headers["privy-app-id"] == APP_ID
    assert request.headers["privy-idempotency-key"] == IDEMPOTENCY_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("MarqetFi/")
    assert request.get_json() == {"chain_type": "ethereum"}


def test_get_wallet_reads_the_wallet_by_id(httpserver: HTTPServer, make_provider: MakeProvider) -> None:
    httpserver.expect_request(f"/v1/wallets/{WALLET_ID}", method="GET").respond_with_json(
        fixture("wallet.json")
    )

    assert make_provider().get_wallet(provider_wallet_id=WALLET_ID) == EXPECTED

    request, _ = httpserver.log[0]
    assert request.authorization is not None and request.authorization.password == APP_SECRET
    assert request.headers["privy-app-id"] == APP_ID
    assert "privy-idempotency-key" not in request.headers


def test_a_lowercase_address_comes_back_checksummed(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    wallet = fixture("wallet.json") | {"address": EXPECTED.address.lower()}
    httpserver.expect_request(f"/v1/wallets/{WALLET_ID}").respond_with_json(wallet)

    assert make_provider().get_wallet(provider_wallet_id=WALLET_ID).address == EXPECTED.address


@pytest.mark.parametrize("missing", ["address", "id"])
def test_an_answer_without_address_or_id_is_a_provider_error(
    httpserver: HTTPServer, make_provider: MakeProvider, missing: str
) -> None:
    wallet = fixture("wallet.json")
    del wallet[missing]
    httpserver.expect_request("/v1/wallets", method="POST").respond_with_json(wallet)

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    assert caught.value.provider == "privy" and not caught.value.retryable
    assert f"no {missing}" in str(caught.value)


def test_an_unsupported_chain_type_is_refused_without_calling_privy(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_provider().create_wallet(owner_ref="u1", chain_type="solana", idempotency_key=IDEMPOTENCY_KEY)

    assert caught.value.status_code == 400
    assert httpserver.log == []


def test_an_idempotency_key_longer_than_privy_accepts_is_refused_without_calling_privy(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_provider().create_wallet(owner_ref="u1", chain_type="ethereum", idempotency_key="k" * 257)

    assert caught.value.status_code == 400
    assert httpserver.log == []


def test_a_400_answer_is_a_non_retryable_error_with_privy_message(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    answer = fixture("error_invalid_chain_type.json")
    httpserver.expect_request("/v1/wallets", method="POST").respond_with_json(answer, status=400)

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    error = caught.value
    assert (error.provider, error.status_code, error.retryable, error.response) == (
        "privy",
        400,
        False,
        answer,
    )
    assert "Invalid chain_type" in str(error)
    assert len(httpserver.log) == 1
    assert_no_secret(error)


def test_a_401_answer_is_a_non_retryable_error_without_the_secret(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/v1/wallets/{WALLET_ID}").respond_with_json(
        fixture("error_invalid_credentials.json"), status=401
    )

    with pytest.raises(ProviderError) as caught:
        make_provider().get_wallet(provider_wallet_id=WALLET_ID)

    assert (caught.value.status_code, caught.value.retryable) == (401, False)
    assert len(httpserver.log) == 1
    assert_no_secret(caught.value)


def test_get_wallet_of_an_unknown_id_is_a_404_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request("/v1/wallets/nosuchwallet0000000000000").respond_with_json(
        fixture("error_wallet_not_found.json"), status=404
    )

    with pytest.raises(ProviderError) as caught:
        make_provider().get_wallet(provider_wallet_id="nosuchwallet0000000000000")

    assert (caught.value.status_code, caught.value.retryable) == (404, False)
    assert caught.value.response == {"error": "Wallet not found"}
    assert_no_secret(caught.value)


def test_create_is_retried_after_a_500_with_the_same_idempotency_key(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_oneshot_request("/v1/wallets", method="POST").respond_with_json(
        fixture("error_internal.json"), status=500
    )
    httpserver.expect_request("/v1/wallets", method="POST").respond_with_json(fixture("wallet.json"))

    assert create(make_provider()) == EXPECTED

    assert len(httpserver.log) == 2
    assert {request.headers["privy-idempotency-key"] for request, _ in httpserver.log} == {IDEMPOTENCY_KEY}
    assert [request.get_json() for request, _ in httpserver.log] == [{"chain_type": "ethereum"}] * 2


def test_a_persistent_429_ends_as_a_retryable_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request("/v1/wallets", method="POST").respond_with_json(
        fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "0"}
    )

    with pytest.raises(ProviderError) as caught:
        create(make_provider(max_attempts=3))

    assert (caught.value.status_code, caught.value.retryable) == (429, True)
    assert len(httpserver.log) == 3
    assert_no_secret(caught.value)


def test_a_timeout_ends_as_a_retryable_error(slow_server: HTTPServer, make_provider: MakeProvider) -> None:
    def too_slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(json.dumps(fixture("wallet.json")), content_type="application/json")

    slow_server.expect_request("/v1/wallets", method="POST").respond_with_handler(too_slow)

    with pytest.raises(ProviderError) as caught:
        create(make_provider(slow_server.url_for("/"), timeout=0.1, max_attempts=2))

    assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == ("privy", None, True)
    assert "timed out" in str(caught.value)
    assert_no_secret(caught.value)
