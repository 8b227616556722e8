"""Operators' webhook screens: pages load, health columns come from one query, secrets never
show, and the enable / disable / redeliver / recover actions go through audited services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from marqetfi.core.crypto import decrypt
from marqetfi.core.models import AuditEntry
from tests.webhooks.factories import (
    WebhookAttemptFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
    WebhookRecoveryFactory,
)
from webhooks.models import WebhookEndpoint, WebhookRecovery

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client: Any, django_user_model: Any) -> Any:
    operator = django_user_model.objects.create_superuser(email="ops@marqetfi.local", password="ops-Pass-1")
    client.force_login(operator)
    client.operator = operator
    return client


@pytest.fixture
def endpoint() -> WebhookEndpoint:
    endpoint: Any = WebhookEndpointFactory(url="https://93.184.216.34/hooks/health")
    now = timezone.now()
    ok = WebhookDeliveryFactory(endpoint=endpoint, status="succeeded")
    failed = WebhookDeliveryFactory(endpoint=endpoint, status="failed")
    WebhookAttemptFactory(delivery=ok, number=1, latency_ms=100, succeeded=True)
    WebhookAttemptFactory(delivery=failed, number=1, latency_ms=300, status_code=500, succeeded=False)
    WebhookAttemptFactory(delivery=failed, number=2, latency_ms=200, status_code=502, succeeded=False)
    WebhookAttemptFactory(delivery=ok, number=2, latency_ms=400, succeeded=True)
    # Outside the 7-day window: counts for nothing.
    WebhookAttemptFactory(
        delivery=failed, number=3, latency_ms=9000, succeeded=False, started_at=now - timedelta(days=8)
    )
    return endpoint


def act(client: Any, model: str, action: str, objects: list[Any]) -> Any:
    return client.post(
        reverse(f"admin:webhooks_{model}_changelist"),
        {"action": action, "_selected_action": [str(o.pk) for o in objects]},
        follow=True,
    )


def test_every_webhooks_page_loads_for_an_operator(operator_client, endpoint):
    delivery = endpoint.deliveries.first()
    recovery = WebhookRecoveryFactory(endpoint=endpoint)
    pages = [
        reverse("admin:webhooks_webhookendpoint_changelist"),
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:webhooks_webhookdelivery_changelist"),
        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
        reverse("admin:webhooks_webhookrecovery_changelist"),
        reverse("admin:webhooks_webhookrecovery_change", args=[recovery.pk]),
        reverse("admin:webhooks_webhookendpoint_changelist") + "?q=health",
        reverse("admin:webhooks_webhookendpoint_changelist") + f"?q={endpoint.user.email}",
        reverse("admin:webhooks_webhookendpoint_changelist") + "?enabled__exact=1&disabled_reason__exact=",
        reverse("admin:webhooks_webhookdelivery_changelist")
        + "?status__exact=failed&event_type=order.filled",
        reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}",
    ]
    for page in pages:
        response = operator_client.get(page)
        assert response.status_code == 200, page


def test_the_endpoint_list_shows_success_rate_and_latency_of_the_last_7_days(operator_client, endpoint):
    page = operator_client.get(reverse("admin:webhooks_webhookendpoint_changelist")).content.decode()

    assert "50.0% of 4" in page
    assert "250 ms" in page


def test_the_health_columns_cost_no_query_per_row(operator_client, endpoint):
    url = reverse("admin:webhooks_webhookendpoint_changelist")
    operator_client.get(url)
    with CaptureQueriesContext(connection) as one:
        operator_client.get(url)
    for _ in range(5):
        more = WebhookEndpointFactory()
        WebhookAttemptFactory(delivery=WebhookDeliveryFactory(endpoint=more))

    with CaptureQueriesContext(connection) as six:
        operator_client.get(url)

    assert len(six) == len(one)


def test_no_secret_is_on_any_endpoint_page(operator_client, endpoint):
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.save(update_fields=["previous_secret_encrypted"])
    secret = decrypt(endpoint.secret_encrypted)

    for url in (
        reverse("admin:webhooks_webhookendpoint_changelist"),
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
    ):
        page = operator_client.get(url).content.decode()
        assert secret not in page
        assert endpoint.secret_encrypted not in page
        assert "secret_encrypted" not in page


def test_operators_disable_and_enable_endpoints_audited(operator_client, endpoint):
    act(operator_client, "webhookendpoint", "disable_endpoints", [endpoint])

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "operator")
    assert endpoint.disabled_at is not None

    act(operator_client, "webhookendpoint", "enable_endpoints", [endpoint])

    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at) == (True, "", None)
    entries = AuditEntry.objects.filter(target_id=str(endpoint.pk)).order_by("created_at")
    assert [e.action for e in entries] == ["webhook_endpoint.disable", "webhook_endpoint.enable"]
    assert {e.actor for e in entries} == {operator_client.operator}


def test_the_redeliver_action_requeues_failed_deliveries_and_skips_disabled_endpoints(
    operator_client, endpoint
):
    failed = endpoint.deliveries.get(status="failed")
    off = WebhookEndpointFactory(enabled=False, disabled_reason="gone")
    stuck = WebhookDeliveryFactory(endpoint=off, status="failed")

    response = act(operator_client, "webhookdelivery", "redeliver", [failed, stuck])

    failed.refresh_from_db()
    stuck.refresh_from_db()
    assert (failed.status, failed.attempts, failed.round_trigger) == ("pending", 0, "redeliver")
    assert stuck.status == "failed"
    text = response.content.decode()
    assert "1 delivery(ies) queued again" in text
    assert "1 skipped" in text
    assert AuditEntry.objects.filter(action="webhook_delivery.redeliver", target_id=str(failed.pk)).exists()


def test_the_recover_action_asks_for_the_last_24_hours(operator_client, endpoint):
    before = timezone.now()

    act(operator_client, "webhookendpoint", "recover_last_24h", [endpoint])

    recovery = WebhookRecovery.objects.get(endpoint=endpoint)
    assert recovery.status == "queued"
    assert abs((recovery.since - (before - timedelta(hours=24))).total_seconds()) < 60
    assert AuditEntry.objects.filter(action="webhook_endpoint.recover", target_id=str(endpoint.pk)).exists()


def test_deliveries_cannot_be_added_changed_or_deleted_in_the_admin(operator_client, endpoint):
    delivery = endpoint.deliveries.get(status="failed")
    change = reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])

    assert operator_client.get(reverse("admin:webhooks_webhookdelivery_add")).status_code == 403
    delete = reverse("admin:webhooks_webhookdelivery_delete", args=[delivery.pk])
    assert operator_client.get(delete).status_code == 403
    assert operator_client.post(change, {"status": "succeeded"}).status_code == 403

    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_staff_without_webhook_permissions_see_no_webhook_pages(client, django_user_model, endpoint):
    clerk = django_user_model.objects.create_user(email="clerk@marqetfi.local", password="x", is_staff=True)
    client.force_login(clerk)

    response = client.get(reverse("admin:webhooks_webhookendpoint_changelist"))

    assert response.status_code == 403


def test_staff_who_may_only_view_see_the_pages_but_no_actions(client, django_user_model, endpoint):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(email="viewer@marqetfi.local", password="x", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_webhookendpoint"),
        Permission.objects.get(codename="view_webhookdelivery"),
    )
    client.force_login(viewer)

    endpoints = client.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    deliveries = client.get(reverse("admin:webhooks_webhookdelivery_changelist"))
    act(client, "webhookendpoint", "disable_endpoints", [endpoint])
    act(client, "webhookdelivery", "redeliver", list(endpoint.deliveries.filter(status="failed")))

    assert endpoints.status_code == deliveries.status_code == 200
    assert "disable_endpoints" not in endpoints.content.decode()
    assert "redeliver" not in deliveries.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.deliveries.filter(status="pending").count() == 0
    assert not AuditEntry.objects.exists()
