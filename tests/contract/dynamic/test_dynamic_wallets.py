"""DynamicWalletProvider against a fake Dynamic answering in Dynamic's documented format.

Creation here goes through the legacy endpoint (``wallet_api="legacy"``); the current one,
``waas/create``, and the fallback between them are in test_dynamic_waas_create.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import EvmTransaction, WalletInfo
from providers.errors import ProviderError
from providers.wallets.dynamic.adapter import DynamicWalletProvider

FIXTURES = Path(__file__).parent / "fixtures"
ENVIRONMENT_ID = "b9e43b09-ff09-4fc8-bb81-8eeda363b993"
API_TOKEN = "dyn_Pq7Lm2Xv9Rt4Kw8Nb3Hs6Jd1Fg5Zc0Ya7Ue2Io9Tr4We6Qs3Ad8Fh1Gj5Kl0"
USER_ID = "88f1f695-3a0b-44fe-96bb-e221384b2c8e"
CREDENTIAL_ID = "101041c7-1c9a-410f-8068-de92092b5d17"
EMAIL = "ada@example.com"
CREATE_PATH = f"/environments/{ENVIRONMENT_ID}/embeddedWallets"
USER_PATH = f"/environments/{ENVIRONMENT_ID}/users/{USER_ID}"
EXPECTED = WalletInfo(
    provider="dynamic",
    provider_wallet_id=f"{USER_ID}:{CREDENTIAL_ID}",
    address="0xC9901AAD25AF20440B991307e673A7353094a4D8",
    chain_type="ethereum",
)

MakeProvider = Callable[..., DynamicWalletProvider]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def assert_no_secret(error: ProviderError) -> None:
    assert API_TOKEN not in str(error)
    assert API_TOKEN not in repr(error.response)


@pytest.fixture
def make_provider(httpserver: HTTPServer) -> Iterator[MakeProvider]:
    providers: list[DynamicWalletProvider] = []

    def make(base_url: str | None = None, **options: Any) -> DynamicWalletProvider:
        options.setdefault("wallet_api", "legacy")
        options.setdefault("timeout", 2.0)
        options.setdefault("backoff_seconds", 0.001)
        provider = DynamicWalletProvider(
            environment_id=ENVIRONMENT_ID,
            api_token=API_TOKEN,
            base_url=base_url or httpserver.url_for("/api/v0"),
            **options,
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


def create(provider: DynamicWalletProvider, email: str | None = EMAIL) -> WalletInfo:
    return provider.create_wallet(
        owner_ref="7d4f9c1e-0b2a-4e8d-a6f3-5c9b1d2e3f40",
        chain_type="ethereum",
        idempotency_key="wallet-create:3f0c9a52",
        email=email,
    )


def test_create_wallet_sends_the_documented_request_and_maps_the_embedded_wallet(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(
        fixture("embedded_wallet_created.json"), status=201
    )

    assert create(make_provider()) == EXPECTED

    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Authorization"] == f"Bearer {API_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("MarqetFi/")
    assert request.get_json() == {"identifier": EMAIL, "type": "email", "chains": ["EVM"], "chain": "EVM"}


def test_create_wallet_for_a_user_who_has_one_returns_the_embedded_evm_wallet(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(
        fixture("user_with_wallets.json"), status=200
    )

    assert create(make_provider()) == EXPECTED


def test_create_wallet_without_an_email_is_refused_without_calling_dynamic(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    with pytest.raises(ProviderError) as caught:
        create(make_provider(), email=None)

    error = caught.value
    assert (error.provider, error.status_code, error.retryable) == ("dynamic", None, False)
    assert error.message == "an email is required to create a Dynamic embedded wallet"
    assert httpserver.log == []


def test_an_answer_without_an_embedded_evm_wallet_is_a_provider_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    answer = fixture("embedded_wallet_created.json")
    answer["user"]["verifiedCredentials"] = answer["user"]["verifiedCredentials"][:1]
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(answer, status=201)

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    assert not caught.value.retryable
    assert "no embedded EVM wallet" in str(caught.value)


def test_get_wallet_reads_the_user_and_picks_the_credential(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{USER_PATH}", method="GET").respond_with_json(
        fixture("user_with_wallets.json")
    )

    assert make_provider().get_wallet(provider_wallet_id=EXPECTED.provider_wallet_id) == EXPECTED

    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == f"Bearer {API_TOKEN}"


def test_get_wallet_of_a_credential_the_user_no_longer_has_is_a_404_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{USER_PATH}").respond_with_json(fixture("user_with_wallets.json"))

    with pytest.raises(ProviderError) as caught:
        make_provider().get_wallet(provider_wallet_id=f"{USER_ID}:00000000-0000-4000-8000-000000000000")

    assert (caught.value.status_code, caught.value.retryable) == (404, False)


def test_get_wallet_of_an_external_wallet_credential_is_a_404_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{USER_PATH}").respond_with_json(fixture("user_with_wallets.json"))

    with pytest.raises(ProviderError) as caught:
        make_provider().get_wallet(provider_wallet_id=f"{USER_ID}:0b6f5c8e-2d51-4f0e-9a57-3f1c6a9e8d24")

    assert caught.value.status_code == 404


@pytest.mark.parametrize("wallet_id", ["", USER_ID, f"{USER_ID}:", f":{CREDENTIAL_ID}"])
def test_get_wallet_with_a_malformed_id_is_a_404_error_without_calling_dynamic(
    httpserver: HTTPServer, make_provider: MakeProvider, wallet_id: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_provider().get_wallet(provider_wallet_id=wallet_id)

    assert caught.value.status_code == 404
    assert httpserver.log == []


def test_get_wallet_of_an_unknown_user_is_a_404_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{USER_PATH}").respond_with_json(
        fixture("error_user_not_found.json"), status=404
    )

    with pytest.raises(ProviderError) as caught:
        make_provider().get_wallet(provider_wallet_id=EXPECTED.provider_wallet_id)

    assert (caught.value.status_code, caught.value.retryable) == (404, False)
    assert caught.value.response == {"error": "User not found"}
    assert len(httpserver.log) == 1
    assert_no_secret(caught.value)


def test_a_400_answer_is_a_non_retryable_error_with_dynamic_message(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    answer = fixture("error_invalid_identifier.json")
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(answer, status=400)

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    error = caught.value
    assert (error.provider, error.status_code, error.retryable, error.response) == (
        "dynamic",
        400,
        False,
        answer,
    )
    assert "Invalid email address" in str(error)
    assert len(httpserver.log) == 1
    assert_no_secret(error)


def test_a_401_answer_is_a_non_retryable_error_without_the_token(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(
        fixture("error_no_jwt.json"), status=401
    )

    with pytest.raises(ProviderError) as caught:
        create(make_provider())

    assert (caught.value.status_code, caught.value.retryable) == (401, False)
    assert len(httpserver.log) == 1
    assert_no_secret(caught.value)


def test_create_is_retried_after_a_500(httpserver: HTTPServer, make_provider: MakeProvider) -> None:
    httpserver.expect_oneshot_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(
        fixture("error_internal.json"), status=500
    )
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(
        fixture("embedded_wallet_created.json"), status=201
    )

    assert create(make_provider()) == EXPECTED

    assert len(httpserver.log) == 2
    assert [request.get_json()["identifier"] for request, _ in httpserver.log] == [EMAIL, EMAIL]


def test_a_429_is_retried_after_retry_after(httpserver: HTTPServer, make_provider: MakeProvider) -> None:
    httpserver.expect_oneshot_request(f"/api/v0{USER_PATH}").respond_with_json(
        fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "0"}
    )
    httpserver.expect_request(f"/api/v0{USER_PATH}").respond_with_json(fixture("user_with_wallets.json"))

    assert make_provider().get_wallet(provider_wallet_id=EXPECTED.provider_wallet_id) == EXPECTED
    assert len(httpserver.log) == 2


def test_a_persistent_429_ends_as_a_retryable_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(f"/api/v0{CREATE_PATH}", method="POST").respond_with_json(
        fixture("error_rate_limited.json"), status=429
    )

    with pytest.raises(ProviderError) as caught:
        create(make_provider(max_attempts=2))

    assert (caught.value.status_code, caught.value.retryable) == (429, True)
    assert len(httpserver.log) == 2
    assert_no_secret(caught.value)


def test_a_timeout_ends_as_a_retryable_error(slow_server: HTTPServer, make_provider: MakeProvider) -> None:
    def too_slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(json.dumps(fixture("user_with_wallets.json")), content_type="application/json")

    slow_server.expect_request(f"/api/v0{USER_PATH}").respond_with_handler(too_slow)

    with pytest.raises(ProviderError) as caught:
        make_provider(slow_server.url_for("/api/v0"), timeout=0.1, max_attempts=2).get_wallet(
            provider_wallet_id=EXPECTED.provider_wallet_id
        )

    assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == (
        "dynamic",
        None,
        True,
    )
    assert "timed out" in str(caught.value)
    assert_no_secret(caught.value)


# --- health_check --------------------------------------------------------------------------

USERS_PATH = f"/api/v0/environments/{ENVIRONMENT_ID}/users"


def test_health_check_lists_one_user_with_the_api_token(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(USERS_PATH, method="GET", query_string="limit=1").respond_with_json(
        fixture("users_page.json")
    )

    make_provider().health_check()

    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.headers["Authorization"] == f"Bearer {API_TOKEN}"


@pytest.mark.parametrize(
    ("status", "answer", "retryable"),
    [(401, "error_no_jwt.json", False), (500, "error_internal.json", True)],
)
def test_a_failed_health_check_is_tried_once(
    httpserver: HTTPServer, make_provider: MakeProvider, status: int, answer: str, retryable: bool
) -> None:
    httpserver.expect_request(USERS_PATH, method="GET").respond_with_json(fixture(answer), status=status)

    with pytest.raises(ProviderError) as caught:
        make_provider(max_attempts=3).health_check()

    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert len(httpserver.log) == 1
    assert_no_secret(caught.value)


# --- signing: on the user's device only ------------------------------------------------------


def test_signing_is_not_possible_server_side_and_calls_nothing(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    provider = make_provider()
    wallet_id = f"{USER_ID}:{CREDENTIAL_ID}"

    with pytest.raises(ProviderError, match="sign on the user's device") as signing:
        provider.sign_message(provider_wallet_id=wallet_id, message="hello")
    with pytest.raises(ProviderError, match="sign on the user's device") as sending:
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet_id,
            transaction=EvmTransaction(
                chain_id=42161, to="0x8e60D1d62Db214f3AB158692CE9D3a3676BC6A11", value=1
            ),
        )

    for caught in (signing, sending):
        assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == (
            "dynamic",
            501,
            False,
        )
    assert httpserver.log == []
