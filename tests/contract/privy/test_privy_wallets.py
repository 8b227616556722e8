"""PrivyWalletProvider against a fake Privy answering in Privy's documented format."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from providers.base import EvmTransaction, SentTransaction, WalletInfo
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


# --- health_check --------------------------------------------------------------------------


def test_health_check_lists_one_wallet_with_the_app_credentials(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request("/v1/wallets", method="GET", query_string="limit=1").respond_with_json(
        fixture("wallets_page.json")
    )

    make_provider().health_check()

    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.authorization is not None and request.authorization.password == APP_SECRET
    assert request.headers["privy-app-id"] == APP_ID


@pytest.mark.parametrize(
    ("status", "answer", "retryable"),
    [(401, "error_invalid_credentials.json", False), (500, "error_internal.json", True)],
)
def test_a_failed_health_check_is_tried_once(
    httpserver: HTTPServer, make_provider: MakeProvider, status: int, answer: str, retryable: bool
) -> None:
    httpserver.expect_request("/v1/wallets", method="GET").respond_with_json(fixture(answer), status=status)

    with pytest.raises(ProviderError) as caught:
        make_provider(max_attempts=3).health_check()

    assert (caught.value.status_code, caught.value.retryable) == (status, retryable)
    assert len(httpserver.log) == 1
    assert_no_secret(caught.value)


# --- sign_message ----------------------------------------------------------------------------

RPC_PATH = f"/v1/wallets/{WALLET_ID}/rpc"


def test_sign_message_sends_personal_sign_and_returns_the_signature(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    answer = fixture("personal_sign.json")
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(answer)

    signature = make_provider().sign_message(provider_wallet_id=WALLET_ID, message="Sign in to MarqetFi ✓")

    assert signature == answer["data"]["signature"]
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.get_json() == {
        "method": "personal_sign",
        "params": {"message": "Sign in to MarqetFi ✓", "encoding": "utf-8"},
    }
    assert request.authorization is not None and request.authorization.password == APP_SECRET
    assert request.headers["privy-app-id"] == APP_ID


def test_sign_message_is_retried_after_a_500_since_signing_changes_nothing(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_oneshot_request(RPC_PATH, method="POST").respond_with_json(
        fixture("error_internal.json"), status=500
    )
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(fixture("personal_sign.json"))

    assert make_provider().sign_message(provider_wallet_id=WALLET_ID, message="hello").startswith("0x")
    assert len(httpserver.log) == 2


def test_sign_message_of_an_unknown_wallet_is_a_404(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(
        fixture("error_wallet_not_found.json"), status=404
    )

    with pytest.raises(ProviderError) as caught:
        make_provider().sign_message(provider_wallet_id=WALLET_ID, message="hello")

    assert (caught.value.status_code, caught.value.retryable) == (404, False)
    assert_no_secret(caught.value)


@pytest.mark.parametrize(
    "data",
    [{}, {"signature": "0x1234", "encoding": "hex"}, {"signature": None}],
)
def test_sign_message_without_a_65_byte_signature_is_an_error(
    httpserver: HTTPServer, make_provider: MakeProvider, data: dict[str, Any]
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(
        {"method": "personal_sign", "data": data}
    )

    with pytest.raises(ProviderError, match="65-byte signature") as caught:
        make_provider().sign_message(provider_wallet_id=WALLET_ID, message="hello")

    assert caught.value.retryable is False


def test_sign_message_without_a_wallet_id_calls_nothing(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    with pytest.raises(ProviderError) as caught:
        make_provider().sign_message(provider_wallet_id="", message="hello")

    assert caught.value.status_code == 404
    assert httpserver.log == []


# --- sign_and_send_transaction ---------------------------------------------------------------

ARBITRUM = 42161
RECIPIENT = "0x8e60D1d62Db214f3AB158692CE9D3a3676BC6A11"
SENT_HASH = fixture("eth_send_transaction.json")["data"]["hash"].lower()
USDC_TRANSFER = (
    "0xa9059cbb0000000000000000000000008e60d1d62db214f3ab158692ce9d3a3676bc6a11"
    "00000000000000000000000000000000000000000000000000000000000f4240"
)


def send(provider: PrivyWalletProvider, **fields: Any) -> SentTransaction:
    transaction = EvmTransaction(**{"chain_id": ARBITRUM, "to": RECIPIENT.lower(), **fields})
    return provider.sign_and_send_transaction(provider_wallet_id=WALLET_ID, transaction=transaction)


def idempotency_keys(httpserver: HTTPServer) -> list[str]:
    return [request.headers["privy-idempotency-key"] for request, _ in httpserver.log]


def test_send_posts_eth_send_transaction_on_the_caip2_chain(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(fixture("eth_send_transaction.json"))

    sent = send(make_provider(), value=10**18, data=USDC_TRANSFER, gas_limit=90_000)

    assert sent == SentTransaction(chain_id=ARBITRUM, tx_hash=SENT_HASH)
    (request, _), *rest = httpserver.log
    assert rest == []
    assert request.get_json() == {
        "method": "eth_sendTransaction",
        "caip2": "eip155:42161",
        "chain_type": "ethereum",
        "params": {
            "transaction": {
                "to": RECIPIENT,
                "value": "0xde0b6b3a7640000",
                "data": USDC_TRANSFER,
                "gas_limit": "0x15f90",
            }
        },
    }
    assert uuid.UUID(request.headers["privy-idempotency-key"]).version == 4


def test_send_leaves_the_gas_limit_to_privy_when_none_is_given(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(fixture("eth_send_transaction.json"))

    send(make_provider(), chain_id=8453)

    body = httpserver.log[0][0].get_json()
    assert body["caip2"] == "eip155:8453"
    assert body["params"]["transaction"] == {"to": RECIPIENT, "value": "0x0", "data": "0x"}


def test_every_send_has_its_own_idempotency_key(httpserver: HTTPServer, make_provider: MakeProvider) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(fixture("eth_send_transaction.json"))
    provider = make_provider()

    send(provider, value=1)
    send(provider, value=1)

    first, second = idempotency_keys(httpserver)
    assert first != second


def test_a_send_is_retried_after_a_500_with_the_same_idempotency_key(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_oneshot_request(RPC_PATH, method="POST").respond_with_json(
        fixture("error_internal.json"), status=500
    )
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(fixture("eth_send_transaction.json"))

    assert send(make_provider(), value=1).tx_hash == SENT_HASH

    assert len(httpserver.log) == 2
    assert len(set(idempotency_keys(httpserver))) == 1
    assert len({json.dumps(request.get_json(), sort_keys=True) for request, _ in httpserver.log}) == 1


def test_a_send_still_failing_with_500_may_have_been_sent_and_is_not_retryable(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(
        fixture("error_internal.json"), status=500
    )

    with pytest.raises(ProviderError, match="may have been sent") as caught:
        send(make_provider(max_attempts=3), value=1)

    assert (caught.value.status_code, caught.value.retryable) == (500, False)
    assert caught.value.response == fixture("error_internal.json")
    assert len(httpserver.log) == 3 and len(set(idempotency_keys(httpserver))) == 1
    assert_no_secret(caught.value)


def test_a_send_that_times_out_may_have_been_sent_and_is_not_retryable(
    slow_server: HTTPServer, make_provider: MakeProvider
) -> None:
    received: list[str] = []

    def too_slow(request: Request) -> Response:
        received.append(request.headers["privy-idempotency-key"])
        time.sleep(0.5)
        return Response(json.dumps(fixture("eth_send_transaction.json")), content_type="application/json")

    slow_server.expect_request(RPC_PATH, method="POST").respond_with_handler(too_slow)

    with pytest.raises(ProviderError) as caught:
        send(make_provider(slow_server.url_for("/"), timeout=0.1, max_attempts=2), value=1)

    error = caught.value
    assert (error.provider, error.status_code, error.retryable) == ("privy", None, False)
    assert "timed out" in str(error) and "may have been sent" in str(error)
    assert len(received) == 2 and len(set(received)) == 1
    assert_no_secret(error)


def test_a_send_privy_refuses_is_a_plain_non_retryable_error(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    answer = fixture("error_transaction_failed.json")
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(answer, status=400)

    with pytest.raises(ProviderError, match="insufficient funds") as caught:
        send(make_provider(), value=10**30)

    assert (caught.value.status_code, caught.value.retryable, caught.value.response) == (400, False, answer)
    assert "may have been sent" not in str(caught.value)
    assert len(httpserver.log) == 1


def test_a_send_rate_limited_throughout_stays_retryable(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    """A 429 is Privy refusing before doing anything: a later call is safe."""
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(
        fixture("error_rate_limited.json"), status=429, headers={"Retry-After": "0"}
    )

    with pytest.raises(ProviderError) as caught:
        send(make_provider(max_attempts=2), value=1)

    assert (caught.value.status_code, caught.value.retryable) == (429, True)
    assert len(httpserver.log) == 2


def test_a_send_answer_without_a_hash_is_an_error_that_warns_of_the_send(
    httpserver: HTTPServer, make_provider: MakeProvider
) -> None:
    httpserver.expect_request(RPC_PATH, method="POST").respond_with_json(
        {"method": "eth_sendTransaction", "data": {"caip2": "eip155:42161"}}
    )

    with pytest.raises(ProviderError, match="may have been sent") as caught:
        send(make_provider(), value=1)

    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"to": "0x1234"}, "not an EVM address"),
        ({"value": -1}, "negative"),
        ({"gas_limit": 0}, "positive"),
        ({"data": "0xabc"}, "hex bytes"),
    ],
)
def test_a_malformed_transaction_is_refused_without_calling_privy(
    httpserver: HTTPServer, make_provider: MakeProvider, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        send(make_provider(), **fields)

    assert caught.value.status_code == 400
    assert httpserver.log == []
