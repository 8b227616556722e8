"""Which venue serves a symbol: rules, then health.

A rule for the exact symbol beats the rule for its category, which beats the defaults in
``settings.ROUTING_DEFAULTS``. From the chosen list, venues that are switched off, not
configured or whose circuit is open are skipped (each skip is reported with its reason).
Orders also skip venues that do not list the pair. Anything on an existing position goes to
the venue that holds it, whatever the rules say now.

The rules (and, in ``pricing``, the pair catalogue) are read once per process and kept
until ``routing_generation`` moves: every write to them bumps it. Health (switched off,
circuit open) is looked at on every decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from marqetfi.core.audit import audit_record
from marqetfi.core.runtime import Generation, GenerationCache
from providers import registry
from providers.breaker import breaker_state
from providers.errors import InvalidRoutingRule, NoVenueAvailable, RoutingRuleNotFound
from providers.models import RoutingRule

# Bumped by every change of a routing rule or of the pair catalogue (pricing.services.pairs).
routing_generation = Generation("routing")
_rules_cache: GenerationCache[tuple[str, str], tuple[tuple[str, ...], str]] = GenerationCache(
    routing_generation
)


@dataclass(frozen=True)
class RouteDecision:
    venues: list[str]
    rule: str
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def primary(self) -> str:
        return self.venues[0]


def _breaker_open(name: str) -> bool:
    return breaker_state(name) == "open"


def _candidates(symbol: str, category: str) -> tuple[list[str], str]:
    venues, rule = _rules_cache.get(
        (symbol.upper(), category.lower()), lambda: _candidates_load(symbol, category)
    )
    return list(venues), rule


def routing_cache_clear() -> None:
    """Forget the rules this process read (tests: rows that rolled back move no generation)."""
    _rules_cache.clear()


def _candidates_load(symbol: str, category: str) -> tuple[tuple[str, ...], str]:
    rules = {
        (rule.match, rule.value): rule
        for rule in RoutingRule.objects.filter(enabled=True, value__in=[symbol.upper(), category.lower()])
    }
    if (rule := rules.get((RoutingRule.Match.SYMBOL, symbol.upper()))) is not None:
        return tuple(rule.venues), f"symbol:{symbol.upper()}"
    if (rule := rules.get((RoutingRule.Match.CATEGORY, category.lower()))) is not None:
        return tuple(rule.venues), f"category:{category.lower()}"
    return tuple(settings.ROUTING_DEFAULTS.get(category.lower(), [])), f"default:{category.lower()}"


def _unusable_reason(venue: str) -> str | None:
    if venue not in settings.PROVIDERS or settings.PROVIDERS[venue]["kind"] != "venue":
        return "unknown_venue"
    if not registry.provider_enabled(venue):
        return "disabled"
    if registry.missing_options(venue):
        return "not_configured"
    if _breaker_open(venue):
        return "circuit_open"
    return None


def route(
    *,
    symbol: str,
    category: str,
    purpose: str = "price",
    listed_on: Callable[[str], bool] | None = None,
    position_venue: str | None = None,
) -> RouteDecision:
    """The venues to try for ``purpose`` ("price" or "order"), best first.

    ``listed_on(venue)`` says whether a venue lists the pair (orders only fall back to venues
    that do). ``position_venue`` pins closes and modifications to the venue holding the position.
    """
    if position_venue is not None:
        reason = _unusable_reason(position_venue)
        if reason in ("unknown_venue", "not_configured"):
            raise NoVenueAvailable(
                details={"symbol": symbol, "skipped": [{"venue": position_venue, "reason": reason}]}
            )
        return RouteDecision(venues=[position_venue], rule="position")
    candidates, rule = _candidates(symbol, category)
    usable, skipped = [], []
    for venue in candidates:
        reason = _unusable_reason(venue)
        if reason is None and purpose == "order" and listed_on is not None and not listed_on(venue):
            reason = "pair_not_listed"
        if reason is None:
            usable.append(venue)
        else:
            skipped.append({"venue": venue, "reason": reason})
    if not usable:
        raise NoVenueAvailable(details={"symbol": symbol, "rule": rule, "skipped": skipped})
    return RouteDecision(venues=usable, rule=rule, skipped=skipped)


def routing_rule_validate(match: str, value: str, venues: Any) -> tuple[str, str, list[str]]:
    errors: dict[str, list[str]] = {}
    if match not in RoutingRule.Match.values:
        errors["match"] = ["Use symbol or category."]
    if match == RoutingRule.Match.CATEGORY and value.lower() not in settings.ROUTING_DEFAULTS:
        errors["value"] = [f"Unknown category. Known: {', '.join(sorted(settings.ROUTING_DEFAULTS))}."]
    known_venues = registry.provider_names("venue")
    if not isinstance(venues, list) or not venues or not all(isinstance(v, str) for v in venues):
        errors["venues"] = ["A non-empty list of venue names, primary first."]
    elif unknown := [v for v in venues if v not in known_venues]:
        errors["venues"] = [f"Unknown venue(s): {', '.join(unknown)}. Known: {', '.join(known_venues)}."]
    elif len(set(venues)) != len(venues):
        errors["venues"] = ["A venue may appear once."]
    if errors:
        raise InvalidRoutingRule(details=errors)
    normalized = value.upper() if match == RoutingRule.Match.SYMBOL else value.lower()
    return match, normalized, list(venues)


def _rule_public(rule: RoutingRule) -> dict[str, Any]:
    return {"match": rule.match, "value": rule.value, "venues": rule.venues, "enabled": rule.enabled}


@transaction.atomic
def routing_rule_create(
    *, match: str, value: str, venues: list[str], enabled: bool = True, actor: Any = None
) -> RoutingRule:
    match, value, venues = routing_rule_validate(match, value, venues)
    if RoutingRule.objects.filter(match=match, value=value).exists():
        raise InvalidRoutingRule("A rule for this symbol or category exists: change it instead.")
    rule = RoutingRule.objects.create(
        match=match,
        value=value,
        venues=venues,
        enabled=enabled,
        updated_by=actor if getattr(actor, "pk", None) else None,
    )
    routing_generation.bump()
    audit_record(
        actor=actor,
        action="routing_rule.create",
        target_type="routing_rule",
        target_id=rule.pk,
        changes=_rule_public(rule),
    )
    return rule


@transaction.atomic
def routing_rule_update(*, rule_id: Any, actor: Any = None, **changes: Any) -> RoutingRule:
    rule = RoutingRule.objects.select_for_update().filter(pk=rule_id).first()
    if rule is None:
        raise RoutingRuleNotFound()
    before = _rule_public(rule)
    match, value, venues = routing_rule_validate(
        changes.get("match", rule.match), changes.get("value", rule.value), changes.get("venues", rule.venues)
    )
    rule.match, rule.value, rule.venues = match, value, venues
    rule.enabled = bool(changes.get("enabled", rule.enabled))
    rule.updated_by = actor if getattr(actor, "pk", None) else None
    rule.save(update_fields=["match", "value", "venues", "enabled", "updated_by", "updated_at"])
    routing_generation.bump()
    audit_record(
        actor=actor,
        action="routing_rule.update",
        target_type="routing_rule",
        target_id=rule.pk,
        changes={"before": before, "after": _rule_public(rule)},
    )
    return rule


@transaction.atomic
def routing_rule_delete(*, rule_id: Any, actor: Any = None) -> None:
    rule = RoutingRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise RoutingRuleNotFound()
    audit_record(
        actor=actor,
        action="routing_rule.delete",
        target_type="routing_rule",
        target_id=rule.pk,
        changes=_rule_public(rule),
    )
    rule.delete()
    routing_generation.bump()
