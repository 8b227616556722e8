"""An OstiumVenue pointed at a local server that plays the price service, the subgraph and
the Arbitrum RPC, each under the path it has in production."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from providers.venues.ostium.adapter import OstiumVenue

FIXTURES = Path(__file__).parent / "fixtures"

# Ostium on Arbitrum One, as ostium-python-sdk 3.3.1 configures mainnet.
CHAIN_ID = 42161
TRADING = "0x6D0bA1f9996DBD8885827e1b2e8f6593e7702411"
TRADING_STORAGE = "0xcCd5891083A8acD2074690F65d3024E7D13d66E7"
USDC = "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"

TRADER = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
DELEGATE = "0xAb8483F64d9C6d1EcF9b849Ae677dD3315835cb2"
BUILDER = "0x4B20993Bc481177ec7E8f571ceCaE8A9e22C02db"

PRICE_PATH = "/PricePublish/latest-prices"
SUBGRAPH_PATH = "/api/public/67a599d5/subgraphs/ost-prod/live/gn"
# RPC URLs carry their API key in the path: it must never show up in an error.
RPC_KEY = "k3y-7f3a9c1e0b2d4e6f"
RPC_PATH = f"/v2/{RPC_KEY}"

MakeVenue = Callable[..., OstiumVenue]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def venue_options(base_url: str, **overrides: str) -> dict[str, str]:
    """Constructor options as the registry passes them: strings, like settings and configs."""
    base = base_url.rstrip("/")
    return {
        "rpc_url": f"{base}{RPC_PATH}",
        "chain_id": str(CHAIN_ID),
        "price_url": f"{base}{PRICE_PATH}",
        "subgraph_url": f"{base}{SUBGRAPH_PATH}",
        "trading_contract": TRADING,
        "trading_storage_contract": TRADING_STORAGE,
        "usdc_address": USDC,
        "timeout": "2",
        "max_attempts": "3",
        "backoff_seconds": "0.001",
        **overrides,
    }


@pytest.fixture
def make_venue(httpserver: HTTPServer) -> Iterator[MakeVenue]:
    venues: list[OstiumVenue] = []

    def make(server: HTTPServer | None = None, **overrides: str) -> OstiumVenue:
        venue = OstiumVenue(**venue_options((server or httpserver).url_for("/"), **overrides))
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        venue.close()


@pytest.fixture(scope="module")
def venue() -> Iterator[OstiumVenue]:
    """For building transactions, which asks no server (nothing listens on port 9) and keeps
    no state: one per module spares each test the cost of the adapter's TLS contexts."""
    built = OstiumVenue(**venue_options("http://127.0.0.1:9"))
    yield built
    built.close()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[HTTPServer]:
    """Threaded, so that a handler still sleeping after its client gave up blocks no one."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()
