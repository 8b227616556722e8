"""Demo data for a fresh machine; each function is idempotent and later issues add to it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction


@transaction.atomic
def demo_admin_ensure(*, email: str, password: str) -> bool:
    """Make sure a superuser with these credentials exists; True if it was created."""
    User = get_user_model()  # noqa: N806
    user = User.objects.filter(email=email.lower()).first()
    if user is None:
        User.objects.create_superuser(email=email, password=password)
        return True
    changed = []
    if not user.check_password(password):
        user.set_password(password)
        changed.append("password")
    for flag in ("is_staff", "is_superuser", "is_active"):
        if not getattr(user, flag):
            setattr(user, flag, True)
            changed.append(flag)
    if changed:
        user.save(update_fields=changed)
    return False


# Real venues first (skipped while not configured), the paper venue after them, so a fresh
# machine trades on paper and a configured one on the real venues.
DEMO_ROUTES = {
    "crypto": ["lighter", "paper"],
    "forex": ["ostium", "paper"],
    "indices": ["ostium", "paper"],
    "commodities": ["ostium", "paper"],
}


def demo_market_ensure() -> int:
    """Routing rules that include the paper venue, and the paper venue's pairs; returns the pair count."""
    from pricing.services.pairs import pairs_sync
    from providers.models import RoutingRule
    from providers.services.routing import routing_rule_create

    for category, venues in DEMO_ROUTES.items():
        if not RoutingRule.objects.filter(match=RoutingRule.Match.CATEGORY, value=category).exists():
            routing_rule_create(match=RoutingRule.Match.CATEGORY, value=category, venues=venues)
    result = pairs_sync(provider="paper")
    return result.created + result.updated + result.unchanged
