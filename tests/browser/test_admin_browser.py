"""The admin in a real browser: an operator signs in, writes a provider configuration version
and rolls one back (secrets shown masked), retries a failed swap and redelivers a failed
webhook, each through the admin's own pages; a support user is refused a configuration change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import User
from backoffice.operator_groups import SUPPORT, operator_groups_sync
from deposits.models import DepositStatus
from marqetfi.core.models import AuditEntry
from providers.models import ProviderConfig
from providers.selectors import secrets_decrypt
from providers.services.configs import provider_config_create
from tests.accounts.factories import UserFactory
from tests.backoffice.test_dashboard import trade
from tests.browser.conftest import PASSWORD, admin_action_run, admin_login
from tests.deposits.factories import new_deposit
from tests.webhooks.factories import WebhookDeliveryFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_operator_signs_in_and_sees_the_admin(page: Page, live_server: Any, superuser: Any) -> None:
    admin_login(page, live_server.url, superuser.email)

    expect(page.locator("#site-name")).to_be_visible()
    expect(
        page.get_by_role("link", name="Log out").or_(page.get_by_role("button", name="Log out"))
    ).to_be_visible()
    assert page.locator("#content-main").inner_text().strip()


def test_an_operator_rolls_a_provider_back_and_its_secret_stays_masked(
    page: Page, live_server: Any, superuser: Any
) -> None:
    secret = "privy-secret-never-shown"
    provider_config_create(
        name="privy", values={"app_id": "app-a"}, secrets={"app_secret": secret}, actor=superuser
    )
    provider_config_create(name="privy", values={"app_id": "app-b"}, actor=superuser)
    first = ProviderConfig.objects.get(provider__name="privy", version=1)
    admin_login(page, live_server.url, superuser.email)

    page.goto(f"{live_server.url}/admin/providers/providerconfig/?provider__id__exact={first.provider_id}")
    admin_action_run(page, row_pk=first.pk, action="rollback_to")

    expect(page.locator(".messagelist")).to_contain_text("v3 restores v1")
    active = ProviderConfig.objects.get(provider__name="privy", is_active=True)
    assert (active.version, active.settings["app_id"]) == (3, "app-a")
    page.goto(f"{live_server.url}/admin/providers/providerconfig/{active.pk}/change/")
    expect(page.locator("body")).to_contain_text("app_secret: ********")
    assert secret not in page.content()


def test_an_operator_changes_a_provider_setting_and_secret_which_shows_masked_after(
    page: Page, live_server: Any, superuser: Any
) -> None:
    provider_config_create(
        name="privy", values={"app_id": "app-a"}, secrets={"app_secret": "old"}, actor=superuser
    )
    provider = ProviderConfig.objects.get(provider__name="privy", version=1).provider
    new_secret = "rotated-privy-secret-42"
    admin_login(page, live_server.url, superuser.email)

    page.goto(f"{live_server.url}/admin/providers/provider/{provider.pk}/change/")
    page.get_by_role("link", name="New configuration version").click()
    expect(page.locator("input[name='option:app_id']")).to_have_value("app-a")
    page.fill("input[name='option:app_id']", "app-b")
    page.fill("input[name='secret:app_secret']", new_secret)
    page.fill("input[name=comment]", "rotate the secret")
    page.click("#new-version input[type=submit]")

    expect(page.locator(".messagelist")).to_contain_text("v2 written")
    active = ProviderConfig.objects.get(provider=provider, is_active=True)
    assert (active.version, active.settings) == (2, {"app_id": "app-b"})
    assert secrets_decrypt(active.secrets_encrypted) == {"app_secret": new_secret}
    page.goto(f"{live_server.url}/admin/providers/providerconfig/{active.pk}/change/")
    expect(page.locator("body")).to_contain_text("app_secret: ********")
    assert new_secret not in page.content()
    entry = AuditEntry.objects.get(action="provider_config.create", changes__version=2)
    assert entry.actor == superuser and entry.changes["secrets"] == {"app_secret": "changed"}
    assert new_secret not in str(entry.changes)


def test_an_operator_retries_a_failed_swap(page: Page, live_server: Any, superuser: Any) -> None:
    failed = new_deposit(swap_attempts=3)
    assert failed.status == DepositStatus.FAILED
    admin_login(page, live_server.url, superuser.email)

    page.goto(f"{live_server.url}/admin/deposits/deposit/")
    admin_action_run(page, row_pk=failed.pk, action="retry_failed_swap")

    expect(page.locator(".messagelist")).to_contain_text("1 deposit(s) sent back")
    failed.refresh_from_db()
    assert (failed.status, failed.swap_attempts) == (DepositStatus.QUOTING, 0)
    assert AuditEntry.objects.filter(action="deposit.retry", actor=superuser).count() == 1


def test_an_operator_redelivers_a_failed_webhook(page: Page, live_server: Any, superuser: Any) -> None:
    endpoint = WebhookEndpointFactory()
    failed = WebhookDeliveryFactory(endpoint=endpoint, status="failed")
    admin_login(page, live_server.url, superuser.email)

    page.goto(f"{live_server.url}/admin/webhooks/webhookdelivery/")
    admin_action_run(page, row_pk=failed.pk, action="redeliver")

    expect(page.locator(".messagelist")).to_contain_text("1 delivery(ies) queued again")
    failed.refresh_from_db()
    assert (failed.status, failed.round_trigger) == ("pending", "redeliver")
    assert AuditEntry.objects.filter(action="webhook_delivery.redeliver", actor=superuser).exists()


def test_a_support_user_sees_providers_but_cannot_change_their_configuration(
    page: Page, live_server: Any, superuser: Any
) -> None:
    provider_config_create(name="privy", values={"app_id": "app-a"}, actor=superuser)
    version = ProviderConfig.objects.get(provider__name="privy", version=1)
    support = User.objects.create_user(email="support@example.com", password=PASSWORD, is_staff=True)
    operator_groups_sync(apps=django_apps)  # the migration's groups (a transactional test's flush drops them)
    support.groups.add(Group.objects.get(name=SUPPORT))
    admin_login(page, live_server.url, "support@example.com")

    page.goto(f"{live_server.url}/admin/providers/provider/{version.provider_id}/change/")
    expect(page.locator("body")).to_contain_text("privy")
    expect(page.get_by_role("link", name="New configuration version")).to_have_count(0)
    refused = page.goto(f"{live_server.url}/admin/providers/provider/{version.provider_id}/new-version/")
    assert refused is not None and refused.status == 403
    page.goto(f"{live_server.url}/admin/providers/providerconfig/")
    options = page.locator("select[name=action] option").all_inner_texts()
    assert not any("Roll back" in option or "Activate" in option for option in options)
    assert ProviderConfig.objects.filter(provider__name="privy").count() == 1


def test_an_operator_opens_the_dashboard_and_changes_its_period(
    page: Page, live_server: Any, superuser: Any
) -> None:
    now = timezone.now()
    for day in range(12):
        trader = UserFactory()
        trade(trader, venue="paper", size="0.5", price="64000", when=now - timedelta(days=day))
        trade(trader, venue="lighter", size="2", price="3000", when=now - timedelta(days=day), open_=day < 3)
    admin_login(page, live_server.url, superuser.email)

    page.get_by_role("link", name="Dashboard").click()
    page.wait_for_url(f"{live_server.url}/admin/dashboard/")
    expect(page.locator("#figure-volume strong")).to_have_text("456000.00")
    expect(page.locator("#venue-lighter")).to_be_visible()
    assert page.locator("figure.chart svg").count() >= 3
    assert not page.locator("script[src^='http'], link[href^='http']").count()  # nothing from another site

    page.goto(f"{live_server.url}/admin/dashboard/?period=7d")
    expect(page.locator("#figure-volume strong")).to_have_text("266000.00")
