"""The admin's index groups tables by what operators do, and hides the framework's tables from
everyone but superusers; an app's own page and the model pages keep their URLs."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from backoffice.operator_groups import SUPPORT, TREASURY
from backoffice.sites import FRAMEWORK_SECTION, SECTIONS

pytestmark = pytest.mark.django_db

BUSINESS = [name for name, _ in SECTIONS]


def index_sections(user: User) -> dict[str, list[str]]:
    client = Client()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    return {
        section["name"]: [m["object_name"] for m in section["models"]]
        for section in response.context["app_list"]
    }


def staff_in(group: str) -> User:
    user = User.objects.create_user(
        email=f"{group.split(maxsplit=1)[0].lower()}@example.com", password="x", is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return user


def test_a_superuser_sees_the_sections_in_order_then_the_framework_tables() -> None:
    boss = User.objects.create_superuser(email="boss@example.com", password="x")

    sections = index_sections(boss)

    assert list(sections) == [*BUSINESS, FRAMEWORK_SECTION]
    assert sections["Users and identities"][:3] == ["User", "AuthIdentity", "Wallet"]
    assert "ReconciliationDrift" in sections["Trading"] and "TradingPair" in sections["Trading"]
    assert sections["Money and ledger"] == ["LedgerAccount", "LedgerTransaction"]
    assert sections["Deposits and swaps"] == ["Deposit", "Swap", "ChainScanCursor"]
    assert sections["Providers and routing"][:3] == ["Provider", "ProviderConfig", "RoutingRule"]
    assert {"OperatorAlert", "AuditEntry", "AppSetting", "PeriodicTask"} <= set(sections["Platform"])
    assert {"Site", "OutstandingToken", "BlacklistedToken"} == set(sections[FRAMEWORK_SECTION])
    shown = [model for models in sections.values() for model in models]
    assert len(shown) == len(set(shown))  # each table once


def test_operators_see_only_their_sections_and_never_the_framework_tables() -> None:
    support, treasury = staff_in(SUPPORT), staff_in(TREASURY)

    for user in (support, treasury):
        sections = index_sections(user)
        assert FRAMEWORK_SECTION not in sections
        assert list(sections) == [name for name in BUSINESS if name in sections]
        assert {"Trading", "Money and ledger", "Deposits and swaps", "Webhooks"} <= set(sections)
        assert "LocalWalletKey" not in sections.get("Providers and routing", [])


def test_an_apps_own_page_and_the_model_pages_keep_their_urls(admin_client: Any) -> None:
    trading = admin_client.get("/admin/trading/")
    assert trading.status_code == 200
    assert [app["app_label"] for app in trading.context["app_list"]] == ["trading"]
    assert admin_client.get("/admin/deposits/deposit/").status_code == 200
    assert admin_client.get("/admin/dashboard/").status_code == 200
