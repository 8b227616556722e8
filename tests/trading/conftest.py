"""A paper market the test drives: every category routed to the paper venue, no spread, no
slippage, a walk that stands still, and a trader funded through the ledger."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django_redis import get_redis_connection

from ledger.checks import ledger_check
from ledger.services import balance_adjust
from pricing.services.pairs import pairs_sync
from pricing.services.paper import paper_price_drive
from providers import registry
from providers.models import RoutingRule
from providers.services.routing import routing_rule_create
from providers.venues.paper.walk import ANCHORS_KEY
from tests.accounts.factories import UserFactory
from trading.triggers.consumer import fire_pending


def _forget_prices() -> None:
    redis = get_redis_connection("default")
    redis.delete(ANCHORS_KEY)
    for pattern in ("marqetfi:price:*", "marqetfi:triggers:*"):
        for key in redis.scan_iter(pattern):
            redis.delete(key)


@pytest.fixture
def paper_answer_mode() -> str:
    """How the paper venue answers: ``sync`` here; the lifecycle modules run in both modes
    (``answers_sync_and_async``)."""
    return "sync"


@pytest.fixture
def paper_options(paper_answer_mode: str) -> dict[str, str]:
    """The paper venue's options; a test changes them (a delay, lost answers) before the
    first venue call, or calls ``registry.reset_cache()`` after changing them."""
    return {
        "spread_bps": "0",
        "slippage_bps": "0",
        "volatility_bps": "0",
        "mirror_venue": "",
        "answer_mode": paper_answer_mode,
        "answer_delay_seconds": "0",
        "drop_answers": "false",
    }


@pytest.fixture
def paper_market(db: Any, paper_options: dict[str, str]) -> Iterator[None]:
    catalogue = copy.deepcopy(settings.PROVIDERS)
    catalogue["paper"]["options"] = paper_options
    _forget_prices()
    with override_settings(PROVIDERS=catalogue):
        registry.reset_cache()
        for category in ("crypto", "forex", "indices", "commodities"):
            if not RoutingRule.objects.filter(match=RoutingRule.Match.CATEGORY, value=category).exists():
                routing_rule_create(match=RoutingRule.Match.CATEGORY, value=category, venues=["paper"])
        pairs_sync(provider="paper")
        yield
    registry.reset_cache()
    _forget_prices()


@pytest.fixture
def drive(paper_market: None) -> Callable[..., None]:
    """Set paper prices now: ``drive(BTCUSD="64000")``; each flows through the feed's path,
    and what the ticks enqueued is fired before it returns (as the firing consumer would)."""

    def set_prices(**prices: str) -> None:
        for symbol, price in prices.items():
            paper_price_drive(symbol=symbol, price=Decimal(price))
            fire_pending()

    return set_prices


@pytest.fixture
def staff(db: Any) -> Any:
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def trader(db: Any, staff: Any) -> Any:
    """A trader with 10,000 USDC available."""
    user: Any = UserFactory()
    balance_adjust(user=user, amount=Decimal("10000"), reason="test funding", actor=staff)
    return user


@pytest.fixture
def ledger_balanced() -> Callable[[], None]:
    def check() -> None:
        assert ledger_check() == []

    return check


@pytest.fixture
def still_paper_market(paper_market: None) -> None:
    """The paper market, under the name the trigger tests use."""


@pytest.fixture
def price_to(paper_market: None) -> Callable[..., None]:
    """``price_to("62000")``: BTCUSD's paper price now, through the feed's path (tick hooks
    included), then what the tick enqueued fired (as the firing consumer would)."""

    def set_price(price: str, symbol: str = "BTCUSD") -> None:
        paper_price_drive(symbol=symbol, price=Decimal(price))
        fire_pending()

    return set_price


@pytest.fixture
def funded_trader(trader: Any) -> Any:
    return trader
