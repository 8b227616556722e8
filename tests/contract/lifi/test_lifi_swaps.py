"""LifiSwapProvider against the LI-FI simulator answering scripted LI-FI JSON (no chain).

The answers replayed are in ``fixtures/``, written from LI-FI's documented shapes; the real
client code runs over HTTP against them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from demo.lifi_simulator import LifiSimulator, ScriptedResponse
from providers.base import EvmTransaction, SwapQuote, SwapStatus
from providers.errors import ProviderError
from providers.swaps.lifi.adapter import LifiSwapProvider

FIXTURES = Path(__file__).parent / "fixtures"
USER = "0x5A0b54D5dc17e0AadC383d2db43B0a0D3E029c4c"
USDC_ETHEREUM = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
USDC_ARBITRUM = "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"
NATIVE = "0x0000000000000000000000000000000000000000"
DIAMOND = "0x1231DEB6f5749EF6cE6943a275A1D3E7486F4EaE"
SEND_HASH = "0x58a3f7c1d2e4b6a8c0e2f4d6b8a0c2e4f6d8b0a2c4e6f8d0b2a4c6e8f0d2b4a6"
RECEIVE_HASH = "0x28d1c3e5f7a9b1d3e5c7a9f1b3d5e7c9a1f3b5d7e9c1a3f5b7d9e1c3a5f7b9d1"
API_KEY = "6f1c2e3d-4b5a-4c7d-8e9f-0a1b2c3d4e5f.a1b2c3d4-e5f6"

MakeProvider = Callable[..., LifiSwapProvider]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def answer(name: str, status_code: int = 200, **options: Any) -> ScriptedResponse:
    return ScriptedResponse(status_code=status_code, body=fixture(name), **options)


@pytest.fixture
def simulator() -> Iterator[LifiSimulator]:
    """Scripted answers only: the RPC URL is never called (nothing listens there)."""
    sim = LifiSimulator(
        rpc_url="http://127.0.0.1:9/unused",
        router=DIAMOND,
        output_token=USDC_ARBITRUM,
        to_chain_id=42161,
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def make_provider(simulator: LifiSimulator) -> Iterator[MakeProvider]:
    providers: list[LifiSwapProvider] = []

    def make(**options: Any) -> LifiSwapProvider:
        options.setdefault("base_url", simulator.base_url)
        options.setdefault("timeout", "2")
        options.setdefault("backoff_seconds", "0.01")
        provider = LifiSwapProvider(**options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        provider.close()


def quote(provider: LifiSwapProvider, **overrides: Any) -> SwapQuote:
    request: dict[str, Any] = {
        "from_chain_id": 1,
        "from_token": USDC_ETHEREUM,
        "from_amount_raw": 100_000_000,
        "from_address": USER,
        "to_chain_id": 42161,
        "to_token": USDC_ARBITRUM,
        "to_address": USER,
        "slippage": Decimal("0.005"),
    }
    return provider.quote(**(request | overrides))


def status(provider: LifiSwapProvider) -> SwapStatus:
    return provider.status(tx_hash=SEND_HASH, from_chain_id=1, to_chain_id=42161)


# --- quotes ------------------------------------------------------------------------------


def test_a_quote_asks_lifi_with_the_documented_parameters_and_headers(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("quote_erc20.json")])

    quote(make_provider(integrator="marqetfi-test"), slippage=Decimal("0.0030"))

    assert simulator.requests == [
        (
            "/quote",
            {
                "fromChain": "1",
                "toChain": "42161",
                "fromToken": USDC_ETHEREUM,
                "toToken": USDC_ARBITRUM,
                "fromAddress": USER,
                "fromAmount": "100000000",
                "toAddress": USER,
                "slippage": "0.003",
                "integrator": "marqetfi-test",
            },
        )
    ]
    headers = simulator.received[0].headers
    assert headers["x-lifi-integrator"] == "marqetfi-test"
    assert headers["user-agent"].startswith("MarqetFi/")
    assert "x-lifi-api-key" not in headers


def test_the_api_key_header_is_sent_only_when_a_key_is_configured(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("quote_erc20.json"), answer("quote_erc20.json")])

    quote(make_provider(api_key=API_KEY))
    quote(make_provider(api_key=""))

    with_key, without_key = (received.headers for received in simulator.received)
    assert with_key["x-lifi-api-key"] == API_KEY
    assert "x-lifi-api-key" not in without_key


def test_an_erc20_quote_maps_to_a_swap_quote_with_its_approval_address(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("quote_erc20.json")])

    assert quote(make_provider()) == SwapQuote(
        provider_quote_id="7f3c2a10-9b1e-4d52-8e6a-0c4f2d1b3a95",
        tool="across",
        from_chain_id=1,
        from_token=USDC_ETHEREUM,
        from_amount_raw=100_000_000,
        to_chain_id=42161,
        to_token=USDC_ARBITRUM,
        to_address=USER,
        to_amount_raw=99_812_345,
        to_amount_min_raw=99_313_283,
        slippage=Decimal("0.005"),
        from_amount_usd=Decimal("99.99"),
        to_amount_usd=Decimal("99.80"),
        fee_costs_usd=Decimal("0.29"),
        gas_costs_usd=Decimal("15.94"),
        execution_duration_seconds=64,
        transaction=EvmTransaction(
            chain_id=1,
            to=DIAMOND,
            data=fixture("quote_erc20.json")["transactionRequest"]["data"],
            value=0,
            gas_limit=0x462FC,
        ),
        approval_address=DIAMOND,
        raw=fixture("quote_erc20.json"),
    )


def test_a_native_coin_quote_carries_the_value_and_needs_no_approval(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("quote_native.json")])

    got = quote(make_provider(), from_token=NATIVE, from_amount_raw=50_000_000_000_000_000)

    assert got.from_token == NATIVE
    assert got.approval_address is None
    assert got.transaction.value == 50_000_000_000_000_000
    assert (got.to_amount_raw, got.to_amount_min_raw) == (150_081_234, 149_330_827)
    assert (got.fee_costs_usd, got.gas_costs_usd) == (Decimal("0.44"), Decimal("15.94"))


def test_no_route_is_a_final_error_carrying_lifis_code_and_message(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("error_no_quote.json", 404)])

    with pytest.raises(ProviderError) as caught:
        quote(make_provider())

    error = caught.value
    assert (error.status_code, error.code, error.retryable) == (404, 1002, False)
    assert "Unable to find a quote for the requested transfer." in str(error)
    assert error.response["errors"]["failed"][0]["overallPath"] == "1:USDC-across-42161:USDC"
    assert len(simulator.requests) == 1


@pytest.mark.parametrize(
    ("status_code", "body", "code"),
    [
        (409, "error_slippage.json", 1007),
        (400, None, 1011),
        (424, None, 1008),
    ],
)
def test_refusals_are_final_errors_with_lifis_code(
    simulator: LifiSimulator, make_provider: MakeProvider, status_code: int, body: str | None, code: int
) -> None:
    payload = fixture(body) if body else {"message": "Refused.", "code": code}
    simulator.script("/quote", [ScriptedResponse(status_code=status_code, body=payload)])

    with pytest.raises(ProviderError) as caught:
        quote(make_provider())

    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (status_code, code, False)
    assert len(simulator.requests) == 1


def test_a_429_with_a_long_retry_after_ends_at_once_as_retryable_with_the_wait(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("error_rate_limited.json", 429, headers={"Retry-After": "30"})])

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        quote(make_provider())

    assert time.monotonic() - started < 1
    error = caught.value
    assert (error.status_code, error.code, error.retryable, error.retry_after) == (429, 1005, True, 30)
    assert len(simulator.requests) == 1


def test_a_429_without_retry_after_waits_for_lifis_ratelimit_reset(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    headers = {"ratelimit-limit": "75", "ratelimit-remaining": "0", "ratelimit-reset": "5400"}
    simulator.script("/quote", [answer("error_rate_limited.json", 429, headers=headers)])

    with pytest.raises(ProviderError) as caught:
        quote(make_provider())

    assert (caught.value.retryable, caught.value.retry_after) == (True, 5400)


def test_a_500_is_tried_once_more_then_is_a_retryable_error(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/quote", [answer("error_internal.json", 500)] * 3)

    with pytest.raises(ProviderError) as caught:
        quote(make_provider())

    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (500, 1006, True)
    assert len(simulator.requests) == 2


def test_a_500_followed_by_a_quote_succeeds(simulator: LifiSimulator, make_provider: MakeProvider) -> None:
    simulator.script("/quote", [answer("error_internal.json", 500), answer("quote_erc20.json")])

    assert quote(make_provider()).to_amount_raw == 99_812_345
    assert len(simulator.requests) == 2


def test_an_answer_slower_than_the_timeout_is_a_retryable_error(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    slow = answer("quote_erc20.json", delay_seconds=1.5)
    simulator.script("/quote", [slow, slow])

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        quote(make_provider(timeout="0.3"))

    assert time.monotonic() - started < 1.4
    assert (caught.value.status_code, caught.value.retryable) == (None, True)
    assert "timed out" in str(caught.value)


def _without(path: str) -> dict[str, Any]:
    body = fixture("quote_erc20.json")
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    del target[last]
    return body


def _with(path: str, value: Any) -> dict[str, Any]:
    body = fixture("quote_erc20.json")
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    target[last] = value
    return body


@pytest.mark.parametrize(
    "body",
    [
        "<html>502 Bad Gateway</html>",
        [],
        _without("id"),
        _without("estimate"),
        _without("estimate.toAmountMin"),
        _without("transactionRequest"),
        _without("action.fromToken"),
        _with("estimate.toAmount", "99.8"),
        _with("estimate.toAmount", 99812345),
        _with("estimate.fromAmountUSD", "a lot"),
        _with("estimate.feeCosts", {"amountUSD": "1"}),
        _with("transactionRequest.value", "12"),
        _with("transactionRequest.gasLimit", "0xZZ"),
        _with("transactionRequest.data", "0x123"),
        _with("transactionRequest.to", "0x1234"),
        _with("estimate.approvalAddress", None),
    ],
    ids=lambda body: "garbage",
)
def test_an_answer_lifi_does_not_document_is_a_final_error(
    simulator: LifiSimulator, make_provider: MakeProvider, body: Any
) -> None:
    simulator.script("/quote", [ScriptedResponse(body=body)])

    with pytest.raises(ProviderError) as caught:
        quote(make_provider())

    assert caught.value.provider == "lifi" and not caught.value.retryable
    assert len(simulator.requests) == 1


# --- status ------------------------------------------------------------------------------


def test_the_status_request_names_the_hash_and_both_chains(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/status", [answer("status_pending.json")])

    status(make_provider())

    assert simulator.requests == [("/status", {"txHash": SEND_HASH, "fromChain": "1", "toChain": "42161"})]


@pytest.mark.parametrize(
    "response",
    [answer("status_not_found.json"), answer("error_not_found.json", 404)],
    ids=["200 NOT_FOUND", "HTTP 404"],
)
def test_an_unknown_hash_is_not_found_whether_lifi_answers_200_or_404(
    simulator: LifiSimulator, make_provider: MakeProvider, response: ScriptedResponse
) -> None:
    simulator.script("/status", [response])

    got = status(make_provider())

    assert got.status == "not_found"
    assert (got.sending_tx_hash, got.receiving_tx_hash, got.received_amount_raw) == (None, None, None)
    assert len(simulator.requests) == 1


def test_a_404_that_is_not_lifis_json_error_stays_an_error(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/status", [ScriptedResponse(status_code=404, body="<html>Not Found</html>")])

    with pytest.raises(ProviderError) as caught:
        status(make_provider())

    assert (caught.value.status_code, caught.value.retryable) == (404, False)


def test_a_pending_transfer_shows_its_substatus_and_no_receipt_yet(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/status", [answer("status_pending.json")])

    assert status(make_provider()) == SwapStatus(
        status="pending",
        substatus="WAIT_DESTINATION_TRANSACTION",
        substatus_message="The bridge is waiting for the destination transaction.",
        sending_tx_hash=SEND_HASH,
        receiving_tx_hash=None,
        received_amount_raw=None,
        received_token=None,
        received_chain_id=42161,
        raw=fixture("status_pending.json"),
    )


def test_a_done_transfer_shows_what_was_received(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/status", [answer("status_done.json")])

    assert status(make_provider()) == SwapStatus(
        status="done",
        substatus="COMPLETED",
        substatus_message="The transfer is complete.",
        sending_tx_hash=SEND_HASH,
        receiving_tx_hash=RECEIVE_HASH,
        received_amount_raw=99_812_345,
        received_token=USDC_ARBITRUM,
        received_chain_id=42161,
        raw=fixture("status_done.json"),
    )


def test_a_failed_transfer_shows_why(simulator: LifiSimulator, make_provider: MakeProvider) -> None:
    simulator.script("/status", [answer("status_failed.json")])

    got = status(make_provider())

    assert (got.status, got.substatus) == ("failed", "SLIPPAGE_EXCEEDED")
    assert got.substatus_message == "The return amount was below the minimum amount allowed."
    assert got.sending_tx_hash == SEND_HASH


@pytest.mark.parametrize("value", ["PAUSED", "PROCESSING_REFUND"])
def test_a_status_lifi_adds_later_reads_as_pending(
    simulator: LifiSimulator, make_provider: MakeProvider, value: str
) -> None:
    simulator.script("/status", [ScriptedResponse(body=fixture("status_pending.json") | {"status": value})])

    got = status(make_provider())

    assert got.status == "pending"
    assert got.raw["status"] == value


def test_a_status_rate_limit_is_retryable(simulator: LifiSimulator, make_provider: MakeProvider) -> None:
    simulator.script("/status", [answer("error_rate_limited.json", 429, headers={"Retry-After": "60"})])

    with pytest.raises(ProviderError) as caught:
        status(make_provider())

    assert (caught.value.retryable, caught.value.retry_after, caught.value.code) == (True, 60, 1005)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        {"substatus": "COMPLETED"},
        fixture("status_done.json") | {"receiving": {"chainId": 42161, "amount": "12.5"}},
        fixture("status_done.json") | {"receiving": {"chainId": "arb"}},
        fixture("status_done.json") | {"receiving": {"chainId": 42161, "token": {"address": "USDC"}}},
    ],
    ids=["not json", "no status", "fractional amount", "chain key", "token symbol"],
)
def test_a_status_answer_lifi_does_not_document_is_a_final_error(
    simulator: LifiSimulator, make_provider: MakeProvider, body: Any
) -> None:
    simulator.script("/status", [ScriptedResponse(body=body)])

    with pytest.raises(ProviderError) as caught:
        status(make_provider())

    assert not caught.value.retryable


# --- health ------------------------------------------------------------------------------


def test_without_a_key_the_health_check_lists_the_evm_chains_once(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script("/chains", [answer("chains.json")])

    make_provider().health_check()

    assert simulator.requests == [("/chains", {"chainTypes": "EVM"})]


def test_with_a_key_the_health_check_tests_the_key(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    make_provider(api_key=API_KEY).health_check()

    assert simulator.requests == [("/keys/test", {})]
    assert simulator.received[0].headers["x-lifi-api-key"] == API_KEY


def test_a_refused_key_fails_the_health_check_without_retrying(
    simulator: LifiSimulator, make_provider: MakeProvider
) -> None:
    simulator.script(
        "/keys/test", [ScriptedResponse(status_code=401, body={"message": "Unauthorized", "code": 1010})]
    )

    with pytest.raises(ProviderError) as caught:
        make_provider(api_key=API_KEY).health_check()

    assert (caught.value.status_code, caught.value.code) == (401, 1010)
    assert len(simulator.requests) == 1
