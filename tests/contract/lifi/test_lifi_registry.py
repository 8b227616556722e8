"""The registry builds LI-FI from settings.PROVIDERS["lifi"]: no API key needed, a key sent when set."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import override_settings

from demo.lifi_simulator import LifiSimulator, ScriptedResponse
from providers import registry
from providers.errors import ProviderNotConfigured
from providers.swaps.lifi.adapter import LifiSwapProvider
from tests.contract.lifi.test_lifi_swaps import DIAMOND, SEND_HASH, USDC_ARBITRUM, fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulator() -> Iterator[LifiSimulator]:
    sim = LifiSimulator(rpc_url="http://127.0.0.1:9/unused", router=DIAMOND, output_token=USDC_ARBITRUM)
    sim.start()
    yield sim
    sim.stop()


def lifi_settings(**options: str) -> dict[str, dict[str, object]]:
    providers = copy.deepcopy(settings.PROVIDERS)
    providers["lifi"]["options"] |= options
    return providers


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    registry.reset_cache()
    yield
    registry.reset_cache()


def test_lifi_is_a_swap_provider_that_needs_no_api_key() -> None:
    with override_settings(PROVIDERS=lifi_settings(api_key="")):
        assert registry.provider_names("swap") == ["lifi"]
        assert registry.missing_options("lifi") == []
        assert isinstance(registry.swap_provider(), LifiSwapProvider)
        assert registry.secret_fields("lifi") == ["api_key"]


def test_a_provider_of_another_kind_is_not_a_swap_provider() -> None:
    with pytest.raises(ProviderNotConfigured, match="not a swap provider"):
        registry.swap_provider("local")


def test_the_configured_url_integrator_and_key_reach_lifi(simulator: LifiSimulator) -> None:
    simulator.script("/status", [ScriptedResponse(body=fixture("status_done.json"))])
    options = {"base_url": simulator.base_url, "api_key": "lifi-key-0123456789", "integrator": "marqetfi-ops"}

    with override_settings(PROVIDERS=lifi_settings(**options)):
        got = registry.swap_provider().status(tx_hash=SEND_HASH, from_chain_id=1, to_chain_id=42161)

    assert got.status == "done" and got.received_amount_raw == 99_812_345
    headers = simulator.received[0].headers
    assert (headers["x-lifi-api-key"], headers["x-lifi-integrator"]) == (
        "lifi-key-0123456789",
        "marqetfi-ops",
    )
