"""Demo data for a fresh machine (``seed_demo``, run by ``make run``); each function is idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.db import transaction

from accounts.models import AuthIdentity, AuthMethod, User
from demo.localchain.devstack import DevStack
from deposits.app_settings import DEPOSIT_POLICY
from ledger.models import LedgerEntry, TransactionKind
from ledger.services import balance_adjust
from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.app_settings.services import app_setting_set
from pricing.services.pairs import pairs_sync
from providers import registry
from providers.models import RoutingRule
from providers.services.configs import provider_config_create
from providers.services.routing import routing_rule_create

DEMO_TRADER_FUNDING = Decimal("10000")


@transaction.atomic
def demo_admin_ensure(*, email: str, password: str) -> bool:
    """Make sure a superuser with these credentials exists; True if it was created."""
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


@dataclass(frozen=True)
class DemoTrader:
    created: bool
    funded: Decimal | None  # the amount credited by this run, None when it was funded before


@transaction.atomic
def demo_trader_ensure(*, email: str, password: str, funding: Decimal = DEMO_TRADER_FUNDING) -> DemoTrader:
    """Make sure a trader who signs in with these credentials exists, funded once through the ledger.

    The funding is a ledger adjustment like an operator's; it is posted only while the trader has
    none, so running this again never adds money.
    """
    email = User.objects.normalize_email(email)
    created = False
    user = User.objects.select_for_update().filter(email=email).first()  # one seeding at a time
    if user is None:
        user = User.objects.create_user(email=email, password=password)
        created = True
    elif not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password", "updated_at"])
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"primary": True, "verified": True}
    )
    AuthIdentity.objects.update_or_create(
        user=user,
        method=AuthMethod.EMAIL,
        defaults={"subject": email, "email": email, "email_verified": True},
    )
    already_funded = LedgerEntry.objects.filter(
        account__user=user, transaction__kind=TransactionKind.ADJUSTMENT
    ).exists()
    if already_funded:
        return DemoTrader(created=created, funded=None)
    balance_adjust(user=user, amount=funding, reason="Demo trader funding", actor=None)
    return DemoTrader(created=created, funded=funding)


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
    for category, venues in DEMO_ROUTES.items():
        if not RoutingRule.objects.filter(match=RoutingRule.Match.CATEGORY, value=category).exists():
            routing_rule_create(match=RoutingRule.Match.CATEGORY, value=category, venues=venues)
    result = pairs_sync(provider="paper")
    return result.created + result.updated + result.unchanged


LOCAL_CHAIN_CONFIRMATIONS = 2


def demo_deposits_configure(*, stack: DevStack) -> list[str]:
    """Point deposits at ``make run``'s local chain: the ``chains`` provider (the chain, its RPC,
    test tokens and gas station), LI-FI at the simulator, and the deposit policy settling in the chain's
    test USDC. Idempotent: a configuration already in effect is not written again. Returns
    what was changed."""
    changed: list[str] = []
    chains = {
        str(stack.chain_id): {
            "name": "Local development chain",
            "rpc_url": stack.rpc_url,
            "confirmations": LOCAL_CHAIN_CONFIRMATIONS,
            "scan_batch_blocks": 200,
            # The chain is new on every start: scan it all, so nothing sent before the first scan is missed.
            "scan_from_block": 0,
            "tokens": {
                symbol: {"address": token.address, "decimals": token.decimals}
                for symbol, token in stack.tokens.items()
            },
        }
    }
    # The chain's gas station sends deposit wallets the ETH their first swap needs (one of the
    # local chain's own funded accounts: not the developer's, whose sends are deposits).
    stations = {str(stack.chain_id): stack.gas_station_key} if stack.gas_station_key else {}
    current = registry.provider_options("chains")
    if current.get("chains") != chains or current.get("gas_station_keys") != stations:
        provider_config_create(
            name="chains",
            values={"chains": chains},
            secrets={"gas_station_keys": stations},
            comment="make run: local chain",
        )
        changed.append("chains")
    if stack.lifi_url and registry.provider_options("lifi").get("base_url") != stack.lifi_url:
        provider_config_create(
            name="lifi", values={"base_url": stack.lifi_url}, comment="make run: simulated LI-FI"
        )
        changed.append("lifi")
    policy = {
        "settlement_chain_id": stack.chain_id,
        "settlement_token": stack.tokens["USDC"].address,
        "collection_address": stack.collection_address,
    }
    in_effect = app_setting(DEPOSIT_POLICY)
    if (in_effect.settlement_chain_id, in_effect.settlement_token, in_effect.collection_address) != tuple(
        policy.values()
    ):
        app_setting_set(key=DEPOSIT_POLICY.key, value=policy, actor=None)
        changed.append("deposit_policy")
    registry.reset_cache()
    return changed
