"""Routing: rules, then health. Table-driven over the situations operators create."""

from __future__ import annotations

import contextlib

import pytest

from providers import registry
from providers.models import Provider, RoutingRule
from providers.services import routing

pytestmark = pytest.mark.django_db


def rule(match: str, value: str, *venues: str, enabled: bool = True) -> RoutingRule:
    return RoutingRule.objects.create(match=match, value=value, venues=list(venues), enabled=enabled)


def switch_off(name: str) -> None:
    Provider.objects.update_or_create(name=name, defaults={"kind": "venue", "enabled": False})
    registry.reset_cache()


def open_circuit(name: str) -> None:
    from providers.breaker import call_provider
    from providers.errors import ProviderError

    def failing() -> None:
        raise ProviderError(name, "down", status_code=503, retryable=True)

    for _ in range(50):
        with contextlib.suppress(ProviderError):
            call_provider(name, failing)
        if routing._breaker_open(name):
            return
    raise AssertionError("the breaker did not open")


@pytest.fixture(autouse=True)
def _clean_breakers(redis_conn):
    for key in redis_conn.scan_iter("marqetfi:breaker:*"):
        redis_conn.delete(key)
    yield
    for key in redis_conn.scan_iter("marqetfi:breaker:*"):
        redis_conn.delete(key)


CASES = [
    # (name, rules, setup, symbol, category, purpose, expected venues or error, expected skipped)
    ("defaults: crypto goes to lighter", [], None, "BTCUSD", "crypto", "price", ["lighter"], []),
    ("defaults: forex goes to ostium", [], None, "EURUSD", "forex", "price", ["ostium"], []),
    (
        "category rule replaces the defaults",
        [("category", "crypto", "paper", "lighter")],
        None,
        "BTCUSD",
        "crypto",
        "price",
        ["paper", "lighter"],
        [],
    ),
    (
        "symbol rule beats category rule",
        [("category", "crypto", "lighter", "paper"), ("symbol", "SOLUSD", "paper")],
        None,
        "SOLUSD",
        "crypto",
        "price",
        ["paper"],
        [],
    ),
    (
        "a disabled rule is ignored",
        [("category", "crypto", "lighter"), ("symbol", "SOLUSD", "paper", False)],
        None,
        "SOLUSD",
        "crypto",
        "price",
        ["lighter"],
        [],
    ),
    (
        "a switched-off provider is skipped",
        [("category", "crypto", "lighter", "paper")],
        lambda: switch_off("lighter"),
        "BTCUSD",
        "crypto",
        "price",
        ["paper"],
        [("lighter", "disabled")],
    ),
    (
        "an open circuit is skipped",
        [("category", "forex", "ostium", "paper")],
        lambda: open_circuit("ostium"),
        "EURUSD",
        "forex",
        "price",
        ["paper"],
        [("ostium", "circuit_open")],
    ),
    (
        "orders skip venues that do not list the pair",
        [("category", "crypto", "lighter", "paper")],
        None,
        "PEPEUSD",
        "crypto",
        "order",
        ["paper"],
        [("lighter", "pair_not_listed")],
    ),
    (
        "no healthy venue is no_venue_available",
        [("category", "crypto", "lighter", "paper")],
        lambda: [f() for f in (lambda: switch_off("paper"), lambda: open_circuit("lighter"))],
        "BTCUSD",
        "crypto",
        "price",
        "no_venue_available",
        [("lighter", "circuit_open"), ("paper", "disabled")],
    ),
]


@pytest.mark.parametrize(
    ("name", "rules", "setup", "symbol", "category", "purpose", "expected", "skipped"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_routing(venues, name, rules, setup, symbol, category, purpose, expected, skipped):
    for match, value, *rest in rules:
        enabled = rest[-1] if isinstance(rest[-1], bool) else True
        rule(match, value, *[v for v in rest if isinstance(v, str)], enabled=enabled)
    if setup:
        setup()
    listed_on = (lambda venue: venue != "lighter") if purpose == "order" else None
    if expected == "no_venue_available":
        with pytest.raises(routing.NoVenueAvailable) as refused:
            routing.route(symbol=symbol, category=category, purpose=purpose, listed_on=listed_on)
        assert [(s["venue"], s["reason"]) for s in refused.value.details["skipped"]] == skipped
        return
    decision = routing.route(symbol=symbol, category=category, purpose=purpose, listed_on=listed_on)
    assert decision.venues == expected
    assert [(s["venue"], s["reason"]) for s in decision.skipped] == skipped


def test_a_position_stays_with_the_venue_holding_it(venues):
    rule("category", "crypto", "paper")
    open_circuit("lighter")
    decision = routing.route(symbol="BTCUSD", category="crypto", purpose="order", position_venue="lighter")
    assert decision.venues == ["lighter"]


def test_an_unconfigured_venue_is_skipped(django_capture_on_commit_callbacks):
    from django.test import override_settings

    from tests.providers.venues import providers_with_venues

    with override_settings(PROVIDERS=providers_with_venues(lighter={"base_url": ""})):
        registry.reset_cache()
        rule("category", "crypto", "lighter", "paper")
        decision = routing.route(symbol="BTCUSD", category="crypto")
    registry.reset_cache()
    assert decision.venues == ["paper"]
    assert decision.skipped == [{"venue": "lighter", "reason": "not_configured"}]


def test_rules_are_validated(venues):
    with pytest.raises(routing.InvalidRoutingRule) as refused:
        routing.routing_rule_create(match="category", value="stocks", venues=["nasdaq"])
    assert set(refused.value.details) == {"value", "venues"}
    assert not RoutingRule.objects.exists()
