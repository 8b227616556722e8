"""Wallet creation through Dynamic's current endpoint (``waas/create``) and its legacy fallback,
against FakeDynamic answering in Dynamic's documented format."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from providers.base import WalletInfo
from providers.errors import InvalidProviderConfig, ProviderError
from providers.wallets.dynamic.adapter import DynamicWalletProvider, dynamic_options_check
from tests.contract.dynamic.fake import FakeDynamic, fixture

ENVIRONMENT_ID = "b9e43b09-ff09-4fc8-bb81-8eeda363b993"
API_TOKEN = "dyn_Pq7Lm2Xv9Rt4Kw8Nb3Hs6Jd1Fg5Zc0Ya7Ue2Io9Tr4We6Qs3Ad8Fh1Gj5Kl0"
USER_ID = "88f1f695-3a0b-44fe-96bb-e221384b2c8e"
EMAIL = "ada@example.com"
WAAS_WALLET = WalletInfo(
    provider="dynamic",
    provider_wallet_id=f"{USER_ID}:3c7d1e52-9a4b-4f08-b6e1-0d2f5a8c7e93",
    address="0x4B0897b0513fdC7C541B6d9D7E929C4e5364D2dB",
    chain_type="ethereum",
)
LEGACY_WALLET = WalletInfo(
    provider="dynamic",
    provider_wallet_id=f"{USER_ID}:101041c7-1c9a-410f-8068-de92092b5d17",
    address="0xC9901AAD25AF20440B991307e673A7353094a4D8",
    chain_type="ethereum",
)

MakeProvider = Callable[..., DynamicWalletProvider]
MakeFake = Callable[..., FakeDynamic]


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    """Threaded, so that a create still sleeping after the client gave up blocks no retry."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def make_fake(server: HTTPServer) -> MakeFake:
    def make(**options: Any) -> FakeDynamic:
        return FakeDynamic(server, ENVIRONMENT_ID, **options)

    return make


@pytest.fixture
def make_provider(server: HTTPServer) -> Iterator[MakeProvider]:
    providers: list[DynamicWalletProvider] = []

    def make(**options: Any) -> DynamicWalletProvider:
        options.setdefault("timeout", 2.0)
        options.setdefault("backoff_seconds", 0.001)
        provider = DynamicWalletProvider(
            environment_id=ENVIRONMENT_ID, api_token=API_TOKEN, base_url=server.url_for("/api/v0"), **options
        )
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


def create(provider: DynamicWalletProvider) -> WalletInfo:
    return provider.create_wallet(
        owner_ref="7d4f9c1e-0b2a-4e8d-a6f3-5c9b1d2e3f40",
        chain_type="ethereum",
        idempotency_key="wallet-create:3f0c9a52",
        email=EMAIL,
    )


def assert_no_secret(error: ProviderError) -> None:
    assert API_TOKEN not in str(error)
    assert API_TOKEN not in repr(error.response)


# --- the current endpoint ---------------------------------------------------------------


def test_create_wallet_calls_waas_create_with_the_documented_request(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    fake = make_fake()

    assert create(make_provider()) == WAAS_WALLET

    [request] = fake.received
    assert (request.method, request.path) == ("POST", fake.waas_path)
    assert request.json == {"identifier": EMAIL, "type": "email", "chains": ["EVM"]}
    assert request.headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert request.headers["User-Agent"].startswith("MarqetFi/")
    assert fake.requests_to(fake.legacy_path) == []


def test_creating_again_returns_the_same_wallet(make_fake: MakeFake, make_provider: MakeProvider) -> None:
    fake = make_fake()
    provider = make_provider()

    first, second = create(provider), create(provider)

    assert first == second == WAAS_WALLET
    assert len(fake.requests_to(fake.waas_path)) == 2
    assert list(fake.waas_users) == [EMAIL]


def test_a_create_that_timed_out_is_retried_and_returns_the_wallet_the_first_attempt_made(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    fake = make_fake(stall_creates=1, stall_seconds=0.6)

    wallet = create(make_provider(timeout=0.2, max_attempts=3))

    assert wallet == WAAS_WALLET
    assert len(fake.requests_to(fake.waas_path)) == 2
    assert list(fake.waas_users) == [EMAIL]
    assert create(make_provider()) == wallet


def test_a_create_that_times_out_on_every_attempt_is_a_retryable_error(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    fake = make_fake(stall_creates=2, stall_seconds=0.6)

    with pytest.raises(ProviderError) as caught:
        create(make_provider(timeout=0.2, max_attempts=2))

    assert (caught.value.status_code, caught.value.retryable) == (None, True)
    assert "timed out" in str(caught.value)
    assert len(fake.requests_to(fake.waas_path)) == 2
    assert fake.requests_to(fake.legacy_path) == []
    assert_no_secret(caught.value)


def test_the_waas_wallet_is_picked_over_an_older_embedded_wallet_of_the_user(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    make_fake(waas_answer="waas_wallet_existing_with_legacy.json")

    assert create(make_provider()) == WAAS_WALLET


def test_a_waas_wallet_is_read_back_by_its_id(make_fake: MakeFake, make_provider: MakeProvider) -> None:
    make_fake()
    provider = make_provider()
    wallet = create(provider)

    assert provider.get_wallet(provider_wallet_id=wallet.provider_wallet_id) == WAAS_WALLET


def test_a_500_from_waas_create_is_retried(make_fake: MakeFake, make_provider: MakeProvider) -> None:
    fake = make_fake(fail_next=[(500, "error_internal.json")])

    assert create(make_provider()) == WAAS_WALLET
    assert len(fake.requests_to(fake.waas_path)) == 2


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (400, "error_invalid_identifier.json"),
        (401, "error_no_jwt.json"),
        (403, "error_forbidden.json"),
        (422, "error_unprocessable_invalid_email.json"),
    ],
)
def test_a_client_error_from_waas_create_is_final_and_calls_no_legacy_endpoint(
    make_fake: MakeFake, make_provider: MakeProvider, status: int, answer: str
) -> None:
    fake = make_fake(fail_next=[(status, answer)])

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    error = caught.value
    assert (error.provider, error.status_code, error.retryable) == ("dynamic", status, False)
    assert error.response == fixture(answer)
    assert [r.path for r in fake.received] == [fake.waas_path]
    assert_no_secret(error)


def test_a_persistent_429_from_waas_create_is_a_retryable_error(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    fake = make_fake(fail_next=[(429, "error_rate_limited.json")] * 2)

    with pytest.raises(ProviderError) as caught:
        create(make_provider(max_attempts=2))

    assert (caught.value.status_code, caught.value.retryable) == (429, True)
    assert fake.requests_to(fake.legacy_path) == []


# --- fallback and the legacy option -------------------------------------------------------


@pytest.mark.parametrize("answer", ["error_waas_not_enabled.json", "error_no_wallet_service.json"])
def test_an_environment_without_waas_gets_its_wallet_from_the_legacy_endpoint(
    make_fake: MakeFake, make_provider: MakeProvider, caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    fake = make_fake(waas_enabled=False, waas_disabled_answer=answer)

    with caplog.at_level(logging.WARNING, logger="providers.wallets.dynamic.adapter"):
        wallet = create(make_provider())

    assert wallet == LEGACY_WALLET
    assert [r.path for r in fake.received] == [fake.waas_path, fake.legacy_path]
    [legacy] = fake.requests_to(fake.legacy_path)
    assert legacy.json == {"identifier": EMAIL, "type": "email", "chains": ["EVM"], "chain": "EVM"}
    assert legacy.headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert fixture(answer)["code"] in caplog.text
    assert "wallet_api" in caplog.text
    assert API_TOKEN not in caplog.text


def test_a_fallen_back_create_repeated_returns_the_same_legacy_wallet(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    fake = make_fake(waas_enabled=False)
    provider = make_provider()

    assert create(provider) == create(provider) == LEGACY_WALLET
    assert list(fake.legacy_users) == [EMAIL]
    assert fake.waas_users == {}


def test_the_legacy_option_calls_only_the_legacy_endpoint(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    fake = make_fake()

    assert create(make_provider(wallet_api="legacy")) == LEGACY_WALLET
    assert [r.path for r in fake.received] == [fake.legacy_path]


def test_a_legacy_error_after_the_fallback_is_raised_as_it_is(
    make_fake: MakeFake, make_provider: MakeProvider
) -> None:
    # the first queued answer goes to waas/create, the second to the legacy endpoint
    fake = make_fake(fail_next=[(422, "error_waas_not_enabled.json"), (400, "error_invalid_identifier.json")])

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    assert (caught.value.status_code, caught.value.retryable) == (400, False)
    assert [r.path for r in fake.received] == [fake.waas_path, fake.legacy_path]


@pytest.mark.parametrize("value", ["", "WAAS", "embeddedWallets", None])
def test_an_unknown_wallet_api_is_refused(value: Any) -> None:
    with pytest.raises(InvalidProviderConfig) as caught:
        DynamicWalletProvider(environment_id=ENVIRONMENT_ID, api_token=API_TOKEN, wallet_api=value)
    assert caught.value.details == {"wallet_api": ["One of: waas, legacy."]}

    with pytest.raises(InvalidProviderConfig):
        dynamic_options_check({"wallet_api": value})


def test_the_configuration_check_takes_both_wallet_apis_and_the_default() -> None:
    for options in ({}, {"wallet_api": "waas"}, {"wallet_api": "legacy"}):
        dynamic_options_check(options)
