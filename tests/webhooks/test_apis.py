"""The webhooks REST API: endpoints and their secrets, the SSRF guard at creation, the delivery
log with its filters, and that no user ever reaches another user's webhooks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import bearer_client
from marqetfi.core.crypto import decrypt
from tests.accounts.factories import UserFactory
from tests.webhooks.factories import (
    WebhookAttemptFactory,
    WebhookDeliveryFactory,
    WebhookEndpointFactory,
    WebhookRecoveryFactory,
)
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookRecovery

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hooks/marqetfi"
ENDPOINT_FIELDS = {
    "id",
    "url",
    "description",
    "event_types",
    "enabled",
    "disabled_reason",
    "ordered",
    "created_at",
    "updated_at",
}


@pytest.fixture
def owner() -> Any:
    return UserFactory()


@pytest.fixture
def client(owner: Any) -> APIClient:
    return bearer_client(owner)


def create(client: APIClient, **body: Any) -> Any:
    return client.post("/api/v1/webhooks/endpoints", {"url": PUBLIC_URL, **body}, format="json")


# --- create ---------------------------------------------------------------------------


def test_create_shows_the_secret_once_and_stores_it_encrypted(client, owner):
    response = create(client, event_types=["order.filled", "position.closed"], description="prod")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["order.filled", "position.closed"]
    assert (body["enabled"], body["disabled_reason"], body["ordered"]) == (True, "", True)
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.user == owner
    assert body["secret"] not in endpoint.secret_encrypted
    assert decrypt(endpoint.secret_encrypted) == body["secret"]


def test_the_secret_is_in_no_other_response(client):
    created = create(client).json()
    secret, encrypted = created["secret"], WebhookEndpoint.objects.get(pk=created["id"]).secret_encrypted

    responses = [
        client.get("/api/v1/webhooks/endpoints"),
        client.get(f"/api/v1/webhooks/endpoints/{created['id']}"),
        client.patch(f"/api/v1/webhooks/endpoints/{created['id']}", {"description": "x"}, format="json"),
    ]

    for response in responses:
        assert response.status_code == 200
        text = response.content.decode()
        assert secret not in text
        assert encrypted not in text
        assert "secret" not in text
    assert set(responses[1].json()) == ENDPOINT_FIELDS


def test_an_empty_event_type_list_means_every_type(client):
    body = create(client).json()

    assert body["event_types"] == []
    assert WebhookEndpoint.objects.get(pk=body["id"]).accepts("risk.liquidation")


def test_create_refuses_an_unknown_event_type(client):
    response = create(client, event_types=["order.filled", "order.teleported"])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "event_types" in response.json()["error"]["details"]
    assert not WebhookEndpoint.objects.exists()


def test_account_webhook_disabled_may_be_subscribed_to(client):
    response = create(client, event_types=["account.webhook_disabled"])

    assert response.status_code == 201, response.json()


@override_settings(WEBHOOK_REQUIRE_HTTPS=False)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://localhost/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_create_refuses_internal_targets_and_creates_nothing(client, url):
    response = create(client, url=url)

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "forbidden_address"
    assert "url" in error["details"]
    assert not WebhookEndpoint.objects.exists()


@override_settings(WEBHOOK_REQUIRE_HTTPS=False, WEBHOOK_ALLOWED_NETWORKS=["127.0.0.0/8"])
def test_an_allow_listed_network_may_receive_webhooks(client):
    response = create(client, url="http://127.0.0.1:8099/hook")

    assert response.status_code == 201, response.json()


@override_settings(WEBHOOK_REQUIRE_HTTPS=True)
def test_https_is_required_when_the_setting_says_so(client):
    response = create(client, url="http://93.184.216.34/hook")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "https_required"
    assert not WebhookEndpoint.objects.exists()


def test_create_refuses_a_url_with_credentials(client):
    response = create(client, url="https://user:pw@93.184.216.34/hook")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_url"


@override_settings(WEBHOOK_MAX_ENDPOINTS_PER_USER=2)
def test_create_refuses_more_endpoints_than_the_limit(client):
    assert create(client).status_code == 201
    assert create(client).status_code == 201

    response = create(client)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_limit_reached"
    assert WebhookEndpoint.objects.count() == 2


def test_create_disabled_records_the_owner_as_the_reason(client):
    body = create(client, enabled=False).json()

    assert (body["enabled"], body["disabled_reason"]) == (False, "user")


@override_settings(WEBHOOK_REQUIRE_HTTPS=False)
@pytest.mark.parametrize(
    "body",
    [
        [],
        "https://93.184.216.34/",
        {"url": None},
        {"url": 12},
        {"url": "https://93.184.216.34/" + "a" * 3000},
        {"url": "https://93.184.216.34/\x00"},
        {"url": "ftp://93.184.216.34/"},
        {"url": "https://exa mple.com/"},
        {"url": "https://xn--80ak6aa92e.invalid/"},
        {"url": "https://93.184.216.34:99999/"},
        {"url": PUBLIC_URL, "event_types": "order.filled"},
        {"url": PUBLIC_URL, "event_types": [None]},
        {"url": PUBLIC_URL, "event_types": [{"a": 1}]},
        {"url": PUBLIC_URL, "description": "a\x00b"},
        {"url": PUBLIC_URL, "description": "x" * 300},
        {"url": PUBLIC_URL, "enabled": "maybe"},
        {"url": PUBLIC_URL, "ordered": []},
    ],
)
def test_malformed_create_bodies_answer_400_and_create_nothing(client, body):
    response = client.post("/api/v1/webhooks/endpoints", body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"]
    assert not WebhookEndpoint.objects.exists()


# --- list, update, delete -------------------------------------------------------------


def test_list_is_paginated_newest_first_and_only_the_callers(client, owner):
    older = WebhookEndpointFactory(user=owner, created_at=timezone.now() - timedelta(hours=1))
    newer = WebhookEndpointFactory(user=owner)
    WebhookEndpointFactory()  # someone else's

    first = client.get("/api/v1/webhooks/endpoints?limit=1").json()
    second = client.get(first["next"]).json()

    assert [e["id"] for e in first["results"]] == [str(newer.pk)]
    assert [e["id"] for e in second["results"]] == [str(older.pk)]
    assert second["next"] is None


def test_update_changes_only_what_is_sent(client, owner):
    endpoint = WebhookEndpointFactory(user=owner, description="old", event_types=["order.filled"])

    response = client.patch(
        f"/api/v1/webhooks/endpoints/{endpoint.pk}",
        {"event_types": ["position.opened"], "ordered": False},
        format="json",
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["event_types"], body["ordered"], body["description"]) == (["position.opened"], False, "old")


@override_settings(WEBHOOK_REQUIRE_HTTPS=False)
def test_update_checks_a_new_url_like_create(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)

    response = client.patch(
        f"/api/v1/webhooks/endpoints/{endpoint.pk}", {"url": "http://169.254.169.254/"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "forbidden_address"
    endpoint.refresh_from_db()
    assert endpoint.url.startswith("https://93.184.216.34/")


def test_update_with_nothing_to_change_is_a_400(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)

    response = client.patch(f"/api/v1/webhooks/endpoints/{endpoint.pk}", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_disabling_records_the_owner_and_enabling_clears_the_reason(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)
    path = f"/api/v1/webhooks/endpoints/{endpoint.pk}"

    disabled = client.patch(path, {"enabled": False}, format="json").json()
    endpoint.refresh_from_db()
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "user")
    assert endpoint.disabled_at is not None

    enabled = client.patch(path, {"enabled": True}, format="json").json()
    endpoint.refresh_from_db()
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, "")
    assert endpoint.disabled_at is None


def test_enabling_an_endpoint_disabled_for_failing_clears_its_failure_clock(client, owner):
    endpoint = WebhookEndpointFactory(
        user=owner,
        enabled=False,
        disabled_reason="failing",
        disabled_at=timezone.now(),
        failing_since=timezone.now() - timedelta(days=3),
    )

    response = client.patch(f"/api/v1/webhooks/endpoints/{endpoint.pk}", {"enabled": True}, format="json")

    assert response.status_code == 200
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at, endpoint.failing_since) == (
        True,
        "",
        None,
        None,
    )


def test_the_owner_cannot_enable_an_endpoint_an_operator_disabled(client, owner):
    endpoint = WebhookEndpointFactory(
        user=owner, enabled=False, disabled_reason="operator", disabled_at=timezone.now()
    )

    response = client.patch(f"/api/v1/webhooks/endpoints/{endpoint.pk}", {"enabled": True}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_disabled_by_operator"
    endpoint.refresh_from_db()
    assert not endpoint.enabled


def test_delete_removes_the_endpoint_and_its_deliveries(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)
    delivery = WebhookDeliveryFactory(endpoint=endpoint)

    response = client.delete(f"/api/v1/webhooks/endpoints/{endpoint.pk}")

    assert response.status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
    assert not type(delivery).objects.filter(pk=delivery.pk).exists()
    assert client.get(f"/api/v1/webhooks/endpoints/{endpoint.pk}").status_code == 404


# --- rotate ---------------------------------------------------------------------------


def test_rotate_hands_out_a_new_secret_and_keeps_the_old_one_for_24_hours(client):
    created = create(client).json()

    before = timezone.now()
    response = client.post(f"/api/v1/webhooks/endpoints/{created['id']}/rotate-secret")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"secret", "previous_secret_expires_at"}
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"]
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert decrypt(endpoint.secret_encrypted) == body["secret"]
    assert decrypt(endpoint.previous_secret_encrypted) == created["secret"]
    assert endpoint.previous_secret_expires_at is not None
    expected = before + timedelta(hours=24)
    assert abs((endpoint.previous_secret_expires_at - expected).total_seconds()) < 60
    assert body["previous_secret_expires_at"].startswith(
        endpoint.previous_secret_expires_at.strftime("%Y-%m-%dT%H:%M")
    )


@override_settings(WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS=600)
def test_the_rotation_overlap_is_a_setting(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)

    client.post(f"/api/v1/webhooks/endpoints/{endpoint.pk}/rotate-secret")

    endpoint.refresh_from_db()
    assert endpoint.previous_secret_expires_at is not None
    remaining = (endpoint.previous_secret_expires_at - timezone.now()).total_seconds()
    assert 540 < remaining <= 600


# --- deliveries -----------------------------------------------------------------------


@pytest.fixture
def log(owner: Any) -> dict[str, Any]:
    """Three deliveries of the owner's on two endpoints, one of someone else's."""
    now = timezone.now()
    first, second = WebhookEndpointFactory(user=owner), WebhookEndpointFactory(user=owner)
    old = WebhookDeliveryFactory(
        endpoint=first, event_type="order.filled", status="succeeded", created_at=now - timedelta(days=2)
    )
    failed = WebhookDeliveryFactory(
        endpoint=first, event_type="position.closed", status="failed", created_at=now - timedelta(hours=5)
    )
    pending = WebhookDeliveryFactory(
        endpoint=second, event_type="order.filled", status="pending", created_at=now - timedelta(minutes=1)
    )
    WebhookDeliveryFactory()
    return {"first": first, "second": second, "old": old, "failed": failed, "pending": pending, "now": now}


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [d["id"] for d in response.json()["results"]]


def test_deliveries_list_the_callers_newest_first(client, log):
    response = client.get("/api/v1/webhooks/deliveries")

    assert ids(response) == [str(log[k].pk) for k in ("pending", "failed", "old")]
    item = response.json()["results"][0]
    assert set(item) == {
        "id",
        "endpoint",
        "webhook_id",
        "event_id",
        "event_type",
        "seq",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    }
    assert item["endpoint"] == str(log["second"].pk)
    assert item["seq"] == log["pending"].event_seq
    assert item["event_id"] == str(log["pending"].event_id)
    assert response.json()["next"] is None


def test_deliveries_filter_by_endpoint_status_type_and_time(client, log):
    def get(**params: str) -> list[str]:
        return ids(client.get("/api/v1/webhooks/deliveries", params))

    assert get(endpoint=str(log["first"].pk)) == [str(log["failed"].pk), str(log["old"].pk)]
    assert get(status="failed") == [str(log["failed"].pk)]
    assert get(event_type="order.filled") == [str(log["pending"].pk), str(log["old"].pk)]
    day_ago = (log["now"] - timedelta(days=1)).isoformat()
    hour_ago = (log["now"] - timedelta(hours=1)).isoformat()
    assert get(created_after=day_ago) == [str(log["pending"].pk), str(log["failed"].pk)]
    assert get(created_before=day_ago) == [str(log["old"].pk)]
    assert get(created_after=day_ago, created_before=hour_ago) == [str(log["failed"].pk)]
    assert get(endpoint=str(log["second"].pk), status="failed") == []


def test_filtering_on_another_users_endpoint_finds_nothing(client, log):
    stranger = WebhookDeliveryFactory()

    assert ids(client.get("/api/v1/webhooks/deliveries", {"endpoint": str(stranger.endpoint_id)})) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"endpoint": "not-a-uuid"}, "endpoint"),
        ({"status": "exploded"}, "status"),
        ({"event_type": "order.teleported"}, "event_type"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-45T99:00:00Z"}, "created_before"),
        (
            {"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"},
            "created_before",
        ),
    ],
)
def test_bad_delivery_filters_answer_400_in_the_error_shape(client, log, params, field):
    response = client.get("/api/v1/webhooks/deliveries", params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_a_delivery_shows_its_attempt_log(client, log):
    delivery = log["failed"]
    WebhookAttemptFactory(delivery=delivery, number=1, status_code=500, succeeded=False, response_body="oops")
    WebhookAttemptFactory(
        delivery=delivery, number=2, status_code=None, succeeded=False, latency_ms=None, error="timed out"
    )

    response = client.get(f"/api/v1/webhooks/deliveries/{delivery.pk}")

    assert response.status_code == 200, response.json()
    attempts = response.json()["attempt_log"]
    assert [a["number"] for a in attempts] == [1, 2]
    assert set(attempts[0]) == {
        "number",
        "trigger",
        "started_at",
        "latency_ms",
        "status_code",
        "response_body",
        "error",
        "succeeded",
    }
    assert (attempts[0]["status_code"], attempts[0]["response_body"], attempts[0]["trigger"]) == (
        500,
        "oops",
        "automatic",
    )
    assert (attempts[1]["status_code"], attempts[1]["error"]) == (None, "timed out")


def test_a_recovery_can_be_read_back(client, owner):
    recovery = WebhookRecoveryFactory(endpoint=WebhookEndpointFactory(user=owner))

    response = client.get(f"/api/v1/webhooks/recoveries/{recovery.pk}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["endpoint"], body["status"], body["deliveries_requeued"]) == (
        str(recovery.pk),
        str(recovery.endpoint_id),
        "queued",
        0,
    )


# --- test, redeliver, recover (the delivery engine's services) -------------------------


def test_a_test_send_creates_a_webhook_test_delivery_for_that_endpoint_alone(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)
    other = WebhookEndpointFactory(user=owner)

    response = client.post(f"/api/v1/webhooks/endpoints/{endpoint.pk}/test")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["endpoint"], body["event_type"], body["status"]) == (
        str(endpoint.pk),
        "webhook.test",
        "pending",
    )
    assert WebhookDelivery.objects.filter(event_type="webhook.test").count() == 1
    assert not WebhookDelivery.objects.filter(endpoint=other).exists()
    assert client.get(f"/api/v1/webhooks/deliveries/{body['id']}").status_code == 200


def test_a_test_send_to_a_disabled_endpoint_is_a_409(client, owner):
    endpoint = WebhookEndpointFactory(user=owner, enabled=False, disabled_reason="user")

    response = client.post(f"/api/v1/webhooks/endpoints/{endpoint.pk}/test")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_disabled"
    assert not WebhookDelivery.objects.exists()


def test_redeliver_starts_a_fresh_round_of_a_failed_delivery(client, owner):
    delivery = WebhookDeliveryFactory(
        endpoint=WebhookEndpointFactory(user=owner), status="failed", attempts=4, last_status_code=500
    )

    response = client.post(f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["id"], body["status"], body["attempts"], body["webhook_id"]) == (
        str(delivery.pk),
        "pending",
        0,
        delivery.webhook_id,
    )
    delivery.refresh_from_db()
    assert (delivery.status, delivery.round_trigger) == ("pending", "redeliver")


def test_redeliver_on_a_disabled_endpoint_is_a_409_and_changes_nothing(client, owner):
    endpoint = WebhookEndpointFactory(user=owner, enabled=False, disabled_reason="gone")
    delivery = WebhookDeliveryFactory(endpoint=endpoint, status="failed", attempts=4)

    response = client.post(f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_disabled"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", 4)


def test_recover_queues_a_recovery_the_owner_can_follow(client, owner):
    endpoint = WebhookEndpointFactory(user=owner)
    since = timezone.now() - timedelta(hours=6)

    response = client.post(
        f"/api/v1/webhooks/endpoints/{endpoint.pk}/recover", {"since": since.isoformat()}, format="json"
    )

    assert response.status_code == 202, response.json()
    body = response.json()
    assert {"id", "since", "status", "deliveries_requeued"} <= set(body)
    assert (body["status"], body["deliveries_requeued"], body["endpoint"]) == ("queued", 0, str(endpoint.pk))
    recovery = WebhookRecovery.objects.get(pk=body["id"])
    assert (recovery.user, recovery.since) == (owner, since)
    assert client.get(f"/api/v1/webhooks/recoveries/{body['id']}").json()["id"] == body["id"]


@pytest.mark.parametrize(
    "body",
    [{}, {"since": "last tuesday"}, {"since": "2999-01-01T00:00:00Z"}],
)
def test_recover_needs_a_past_since(client, owner, body):
    endpoint = WebhookEndpointFactory(user=owner)

    response = client.post(f"/api/v1/webhooks/endpoints/{endpoint.pk}/recover", body, format="json")

    assert response.status_code == 400
    assert "since" in response.json()["error"]["details"]
    assert not WebhookRecovery.objects.exists()


def test_recover_on_a_disabled_endpoint_is_a_409(client, owner):
    endpoint = WebhookEndpointFactory(user=owner, enabled=False, disabled_reason="failing")

    response = client.post(
        f"/api/v1/webhooks/endpoints/{endpoint.pk}/recover", {"since": "2026-01-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_endpoint_disabled"


# --- ownership ------------------------------------------------------------------------


def test_no_path_or_method_reaches_another_users_webhooks(client):
    theirs = WebhookEndpointFactory(url="https://93.184.216.34/theirs")
    delivery = WebhookDeliveryFactory(endpoint=theirs, status="failed")
    recovery = WebhookRecoveryFactory(endpoint=theirs)
    before = (theirs.url, theirs.enabled, theirs.secret_encrypted)
    requests = [
        ("get", f"/api/v1/webhooks/endpoints/{theirs.pk}", None),
        ("patch", f"/api/v1/webhooks/endpoints/{theirs.pk}", {"enabled": False}),
        ("delete", f"/api/v1/webhooks/endpoints/{theirs.pk}", None),
        ("post", f"/api/v1/webhooks/endpoints/{theirs.pk}/rotate-secret", None),
        ("post", f"/api/v1/webhooks/endpoints/{theirs.pk}/test", None),
        ("post", f"/api/v1/webhooks/endpoints/{theirs.pk}/recover", {"since": "2026-01-01T00:00:00Z"}),
        ("get", f"/api/v1/webhooks/deliveries/{delivery.pk}", None),
        ("post", f"/api/v1/webhooks/deliveries/{delivery.pk}/redeliver", None),
        ("get", f"/api/v1/webhooks/recoveries/{recovery.pk}", None),
    ]

    for method, path, body in requests:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["error"]["code"].endswith("not_found"), (method, path)

    theirs.refresh_from_db()
    delivery.refresh_from_db()
    assert (theirs.url, theirs.enabled, theirs.secret_encrypted) == before
    assert (delivery.status, delivery.round_trigger) == ("failed", "automatic")
    assert WebhookRecovery.objects.filter(endpoint=theirs).count() == 1
    assert not WebhookDelivery.objects.filter(endpoint=theirs, event_type="webhook.test").exists()
    assert ids(client.get("/api/v1/webhooks/deliveries")) == []
    assert client.get("/api/v1/webhooks/endpoints").json()["results"] == []


def test_unknown_ids_answer_404_in_the_error_shape(client):
    response = client.get("/api/v1/webhooks/endpoints/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "webhook_endpoint_not_found"


def test_the_webhooks_api_needs_a_signed_in_user(api_client):
    for path in ("/api/v1/webhooks/endpoints", "/api/v1/webhooks/deliveries"):
        assert api_client.get(path).status_code == 401


def test_the_schema_documents_the_webhooks_api(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]

    assert {"get", "post"} <= set(paths["/api/v1/webhooks/endpoints"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/webhooks/endpoints/{endpoint_id}"])
    for action in ("rotate-secret", "test", "recover"):
        assert "post" in paths[f"/api/v1/webhooks/endpoints/{{endpoint_id}}/{action}"]
    assert "post" in paths["/api/v1/webhooks/deliveries/{delivery_id}/redeliver"]
    assert "get" in paths["/api/v1/webhooks/recoveries/{recovery_id}"]
    params = {p["name"] for p in paths["/api/v1/webhooks/deliveries"]["get"]["parameters"]}
    assert {
        "endpoint",
        "status",
        "event_type",
        "created_after",
        "created_before",
        "cursor",
        "limit",
    } <= params
    assert paths["/api/v1/webhooks/endpoints"]["post"]["tags"] == ["webhooks"]
