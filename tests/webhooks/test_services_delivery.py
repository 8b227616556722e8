"""The delivery engine against a real HTTP receiver on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from marqetfi.core.app_settings.cache import app_settings_cache
from marqetfi.core.app_settings.services import app_setting_set
from marqetfi.core.crypto import encrypt
from marqetfi.core.events import publish
from marqetfi.core.models import Event
from tests.accounts.factories import UserFactory
from tests.webhooks.receiver import HANG, Receiver, running_receiver
from webhooks.dispatch import events_dispatch_to_webhooks
from webhooks.errors import WebhookEndpointDisabled
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRecovery
from webhooks.services.delivery import (
    deliveries_create_for_event,
    deliveries_due_sweep,
    delivery_attempt,
    delivery_redeliver,
    endpoint_recover_request,
    endpoint_test_send,
    recovery_run,
)
from webhooks.services.endpoints import endpoint_secret_rotate
from webhooks.signing import secret_new
from webhooks.ssrf import url_check

pytestmark = pytest.mark.django_db

Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _loopback_receivers(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_REQUIRE_HTTPS = False
    settings.WEBHOOK_RETRY_DELAY_SCALE = 0.1  # policy delays of 1, 2, 4 s become 0.1, 0.2, 0.4 s


@pytest.fixture
def retry_policy() -> Iterator[Callable[..., None]]:
    def set_policy(**values: int) -> None:
        app_setting_set(key="webhook_retry_policy", value=values, actor=None)
        app_settings_cache.clear()

    set_policy(max_retries=3, base_delay_seconds=1, max_delay_seconds=8, timeout_seconds=1)
    yield set_policy
    app_settings_cache.clear()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def endpoint_for(user: Any, url: str, **fields: Any) -> tuple[WebhookEndpoint, str]:
    secret = secret_new()
    endpoint = WebhookEndpoint.objects.create(user=user, url=url, secret_encrypted=encrypt(secret), **fields)
    return endpoint, secret


def event_for(user: Any, type: str = "order.filled", **data: Any) -> Event:
    return publish(user_id=user.pk, type=type, data={"order_id": "o-1", **data})


def drive(delivery: WebhookDelivery, timeout: float = 15.0) -> WebhookDelivery:
    """Run the delivery's attempts as a worker would, each when it is due, until a final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status != Status.PENDING:
            return delivery
        assert delivery.next_attempt_at is not None
        wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
        if wait > 0:
            time.sleep(wait)
        delivery_attempt(delivery.pk)
    pytest.fail(f"delivery still {delivery.status} after {timeout} s")


def attempts_of(delivery: WebhookDelivery) -> list[WebhookAttempt]:
    return list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))


def only(deliveries: list[WebhookDelivery]) -> WebhookDelivery:
    assert len(deliveries) == 1
    return deliveries[0]


def test_every_delivery_verifies_as_standard_webhooks_and_by_hand(
    retry_policy: Any, receiver: Receiver
) -> None:
    user = UserFactory()
    endpoint, secret = endpoint_for(user, receiver.url)
    event_for(user, type="order.created")
    event = event_for(user, price="101.5")
    delivery = drive(only(deliveries_create_for_event(event)))

    assert delivery.status == Status.SUCCEEDED
    (request,) = receiver.received
    headers = request.headers
    assert Webhook(secret).verify(request.body, headers) == json.loads(request.body)
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    assert headers["x-webhook-signature"] == headers["webhook-signature"]
    assert headers["webhook-id"] == event.public_id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    body = json.loads(request.body)
    assert set(body) == {"id", "type", "seq", "created_at", "data"}
    assert body["id"] == event.public_id
    assert body["type"] == "order.filled"
    assert body["seq"] == event.seq == 2
    assert body["data"] == {"order_id": "o-1", "price": "101.5"}
    assert request.body.decode() == delivery.body
    endpoint.refresh_from_db()
    assert endpoint.last_success_at is not None
    assert endpoint.failing_since is None


def test_a_second_hand_over_creates_only_the_missing_deliveries(receiver: Receiver) -> None:
    user = UserFactory()
    first, _ = endpoint_for(user, receiver.url)
    event = event_for(user)
    (delivery,) = deliveries_create_for_event(event)
    assert deliveries_create_for_event(event) == []
    second, _ = endpoint_for(user, receiver.url)
    (added,) = deliveries_create_for_event(event)
    assert (delivery.endpoint_id, added.endpoint_id) == (first.pk, second.pk)
    assert added.body == delivery.body and added.webhook_id == event.public_id
    assert WebhookDelivery.objects.filter(event=event).count() == 2


def test_a_success_touches_the_endpoint_only_when_it_was_failing_or_its_last_success_is_old(
    retry_policy: Any, receiver: Receiver
) -> None:
    user = UserFactory()
    recent = timezone.now() - timedelta(seconds=5)
    endpoint, _ = endpoint_for(user, receiver.url, last_success_at=recent)
    updated_at = WebhookEndpoint.objects.get(pk=endpoint.pk).updated_at
    assert drive(only(deliveries_create_for_event(event_for(user)))).status == Status.SUCCEEDED
    endpoint.refresh_from_db()
    assert (endpoint.last_success_at, endpoint.updated_at) == (recent, updated_at)

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now())
    assert drive(only(deliveries_create_for_event(event_for(user)))).status == Status.SUCCEEDED
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None
    assert endpoint.last_success_at is not None and endpoint.last_success_at > recent

    old = timezone.now() - timedelta(minutes=2)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_success_at=old)
    assert drive(only(deliveries_create_for_event(event_for(user)))).status == Status.SUCCEEDED
    endpoint.refresh_from_db()
    assert endpoint.last_success_at is not None and endpoint.last_success_at > old


def test_a_rotated_secret_still_verifies_during_its_overlap(retry_policy: Any, receiver: Receiver) -> None:
    user = UserFactory()
    old_secret = secret_new()
    _, new_secret = endpoint_for(
        user,
        receiver.url,
        previous_secret_encrypted=encrypt(old_secret),
        previous_secret_expires_at=timezone.now() + timedelta(hours=1),
    )
    drive(only(deliveries_create_for_event(event_for(user))))

    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(request.body, request.headers)
    Webhook(old_secret).verify(request.body, request.headers)


def test_after_a_rotation_either_secret_verifies_until_the_overlap_ends_then_only_the_new_one(
    retry_policy: Any, receiver: Receiver, settings: Any
) -> None:
    user = UserFactory()
    endpoint, old_secret = endpoint_for(user, receiver.url)
    settings.WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS = 3600
    new_secret = endpoint_secret_rotate(endpoint)
    assert new_secret != old_secret
    drive(only(deliveries_create_for_event(event_for(user))))
    during = receiver.received[-1]
    Webhook(new_secret).verify(during.body, during.headers)
    Webhook(old_secret).verify(during.body, during.headers)

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)  # the overlap is over
    )
    drive(only(deliveries_create_for_event(event_for(user))))
    after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(after.body, after.headers)


def test_500_500_200_makes_exactly_three_attempts_at_growing_intervals(retry_policy: Any) -> None:
    user = UserFactory()
    with running_receiver([500, 500, 200]) as receiver:
        endpoint_for(user, receiver.url)
        event = event_for(user)
        delivery = drive(only(deliveries_create_for_event(event)))

    assert delivery.status == Status.SUCCEEDED
    assert receiver.webhook_ids() == [event.public_id] * 3
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1
    times = [r.at for r in receiver.received]
    first_wait, second_wait = times[1] - times[0], times[2] - times[1]
    assert 0.05 <= first_wait < second_wait  # equal jitter: [0.05, 0.1] then [0.1, 0.2]
    attempts = attempts_of(delivery)
    assert [(a.number, a.status_code, a.succeeded) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert all(a.trigger == WebhookAttempt.Trigger.AUTOMATIC for a in attempts)
    assert attempts[-1].response_body == "ok"


def test_a_receiver_that_never_answers_fails_after_the_configured_retries(retry_policy: Any) -> None:
    retry_policy(max_retries=1, timeout_seconds=1)
    user = UserFactory()
    with running_receiver([HANG, HANG], hang_seconds=3) as receiver:
        endpoint, _ = endpoint_for(user, receiver.url)
        event = event_for(user)
        delivery = drive(only(deliveries_create_for_event(event)))

    assert delivery.status == Status.FAILED
    assert receiver.webhook_ids() == [event.public_id] * 2
    attempts = attempts_of(delivery)
    assert len(attempts) == 2
    assert all(a.error.startswith("timeout") and a.status_code is None for a in attempts)
    assert all(900 <= (a.latency_ms or 0) < 2500 for a in attempts)
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None
    assert endpoint.enabled


def test_a_redelivered_failed_delivery_succeeds_with_the_same_webhook_id(retry_policy: Any) -> None:
    retry_policy(max_retries=1)
    user = UserFactory()
    with running_receiver([503, 503, 200]) as receiver:
        endpoint, _ = endpoint_for(user, receiver.url)
        event = event_for(user)
        delivery = drive(only(deliveries_create_for_event(event)))
        assert delivery.status == Status.FAILED

        delivery = drive(delivery_redeliver(delivery))

    assert delivery.status == Status.SUCCEEDED
    assert receiver.webhook_ids() == [event.public_id] * 3
    assert len({r.body for r in receiver.received}) == 1
    assert [(a.number, a.trigger, a.succeeded) for a in attempts_of(delivery)] == [
        (1, "automatic", False),
        (2, "automatic", False),
        (3, "redeliver", True),
    ]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_redelivery_to_a_disabled_endpoint_is_refused(retry_policy: Any, receiver: Receiver) -> None:
    user = UserFactory()
    endpoint, _ = endpoint_for(user, receiver.url)
    delivery = drive(only(deliveries_create_for_event(event_for(user))))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="user")

    with pytest.raises(WebhookEndpointDisabled):
        delivery_redeliver(delivery)
    with pytest.raises(WebhookEndpointDisabled):
        endpoint_test_send(WebhookEndpoint.objects.get(pk=endpoint.pk))


def test_recovery_resends_every_failed_delivery_since_the_time_and_nothing_else(retry_policy: Any) -> None:
    retry_policy(max_retries=0)
    user = UserFactory()
    with running_receiver([500, 200, 500, 500]) as receiver:
        endpoint, _ = endpoint_for(user, receiver.url)
        early_failed = drive(only(deliveries_create_for_event(event_for(user))))
        since = timezone.now()
        succeeded = drive(only(deliveries_create_for_event(event_for(user))))
        failed = [drive(only(deliveries_create_for_event(event_for(user)))) for _ in range(2)]
        assert [d.status for d in (early_failed, succeeded, *failed)] == [
            "failed",
            "succeeded",
            "failed",
            "failed",
        ]
        seen_before = len(receiver.received)

        recovery = endpoint_recover_request(endpoint, since=since)
        recovery_run(recovery.pk)
        recovery_run(recovery.pk)  # a second run of the task changes nothing
        recovered = [drive(d) for d in failed]

    recovery.refresh_from_db()
    assert recovery.status == WebhookRecovery.Status.DONE
    assert recovery.deliveries_requeued == 2
    assert recovery.finished_at is not None
    assert all(d.status == Status.SUCCEEDED for d in recovered)
    assert sorted(receiver.webhook_ids()[seen_before:]) == sorted(d.webhook_id for d in failed)
    assert all(attempts_of(d)[-1].trigger == "recover" for d in recovered)
    early_failed.refresh_from_db()
    succeeded.refresh_from_db()
    assert early_failed.status == Status.FAILED and len(attempts_of(early_failed)) == 1
    assert succeeded.status == Status.SUCCEEDED and len(attempts_of(succeeded)) == 1


def test_410_gone_disables_the_endpoint_without_retrying(retry_policy: Any) -> None:
    user = UserFactory()
    with running_receiver([410]) as receiver:
        endpoint, _ = endpoint_for(user, receiver.url)
        delivery = drive(only(deliveries_create_for_event(event_for(user))))

    assert delivery.status == Status.FAILED
    assert len(receiver.received) == 1
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "gone"
    assert endpoint.disabled_at is not None


def test_an_endpoint_failing_for_too_long_is_disabled_and_the_account_event_published(
    retry_policy: Any, settings: Any
) -> None:
    settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS = 60
    user = UserFactory()
    with running_receiver([500]) as receiver:
        endpoint, _ = endpoint_for(
            user,
            receiver.url,
            last_success_at=timezone.now() - timedelta(minutes=3),
            failing_since=timezone.now() - timedelta(minutes=2),
        )
        delivery = drive(only(deliveries_create_for_event(event_for(user))))

    assert delivery.status == Status.FAILED
    assert len(receiver.received) == 1
    endpoint.refresh_from_db()
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "failing")
    disabled = Event.objects.get(user=user, type="account.webhook_disabled")
    assert disabled.data == {"endpoint_id": str(endpoint.pk), "url": endpoint.url, "reason": "failing"}


def test_a_recent_failure_does_not_disable_the_endpoint(retry_policy: Any, settings: Any) -> None:
    settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS = 60
    retry_policy(max_retries=0)
    user = UserFactory()
    with running_receiver([500]) as receiver:
        endpoint, _ = endpoint_for(user, receiver.url)
        drive(only(deliveries_create_for_event(event_for(user))))

    endpoint.refresh_from_db()
    assert endpoint.enabled
    assert endpoint.failing_since is not None
    assert not Event.objects.filter(user=user, type="account.webhook_disabled").exists()


@pytest.mark.parametrize(("ordered", "expected"), [(True, [1, 1, 2]), (False, [1, 2, 1])])
def test_a_later_event_does_not_overtake_an_earlier_one_being_retried(
    retry_policy: Any, ordered: bool, expected: list[int]
) -> None:
    user = UserFactory()
    with running_receiver([500]) as receiver:
        endpoint_for(user, receiver.url, ordered=ordered)
        first = only(deliveries_create_for_event(event_for(user)))
        second = only(deliveries_create_for_event(event_for(user)))
        delivery_attempt(first.pk)  # 500: a retry is scheduled
        delivery_attempt(second.pk)  # due now, but waits behind the first when ordered
        drive(first)
        drive(second)

    seqs = [json.loads(r.body)["seq"] for r in receiver.received]
    assert seqs == expected
    second.refresh_from_db()
    assert second.status == Status.SUCCEEDED


def rebinding_resolver(host: str, port: int) -> list[str]:
    """A name that answers a public address first, then the address set by the test."""
    REBINDING["calls"] += 1
    return ["93.184.216.34"] if REBINDING["calls"] == 1 else [REBINDING["then"]]


REBINDING: dict[str, Any] = {"calls": 0, "then": "127.0.0.1"}


@pytest.mark.parametrize("rebound_to", ["127.0.0.1", "169.254.169.254"])
def test_dns_rebinding_after_the_endpoint_was_saved_is_refused_at_delivery(
    retry_policy: Any, receiver: Receiver, settings: Any, rebound_to: str
) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    settings.WEBHOOK_DNS_RESOLVER = "tests.webhooks.test_services_delivery.rebinding_resolver"
    REBINDING.update(calls=0, then=rebound_to)
    retry_policy(max_retries=0)
    user = UserFactory()
    url = f"http://hooks.example.test:{receiver.port}/hooks"
    assert url_check(url).address == "93.184.216.34"  # what saving the endpoint checked
    endpoint_for(user, url)

    delivery = drive(only(deliveries_create_for_event(event_for(user))))

    assert delivery.status == Status.FAILED
    (attempt,) = attempts_of(delivery)
    assert attempt.error.startswith("forbidden_address")
    assert receiver.received == []


def loopback_resolver(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_the_attempt_connects_to_the_checked_address_and_names_the_host(
    retry_policy: Any, receiver: Receiver, settings: Any
) -> None:
    settings.WEBHOOK_DNS_RESOLVER = "tests.webhooks.test_services_delivery.loopback_resolver"
    user = UserFactory()
    endpoint_for(user, f"http://hooks.example.test:{receiver.port}/in?a=1")

    delivery = drive(only(deliveries_create_for_event(event_for(user))))

    assert delivery.status == Status.SUCCEEDED
    (request,) = receiver.received
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"


def test_deliveries_go_to_each_enabled_endpoint_that_takes_the_type_once(
    retry_policy: Any, receiver: Receiver
) -> None:
    user = UserFactory()
    every, _ = endpoint_for(user, receiver.url)
    fills, _ = endpoint_for(user, receiver.url, event_types=["order.filled"])
    endpoint_for(user, receiver.url, event_types=["deposit.received"])
    endpoint_for(user, receiver.url, enabled=False, disabled_reason="user")
    endpoint_for(UserFactory(), receiver.url)
    event = event_for(user)

    created = deliveries_create_for_event(event)
    events_dispatch_to_webhooks([event])  # the outbox sweeper handing it over again

    assert {d.endpoint_id for d in created} == {every.pk, fills.pk}
    assert WebhookDelivery.objects.filter(event=event).count() == 2
    assert all(d.webhook_id == event.public_id and d.event_seq == event.seq for d in created)


def test_a_test_event_goes_only_to_the_endpoint_it_was_sent_to(retry_policy: Any, receiver: Receiver) -> None:
    user = UserFactory()
    endpoint, secret = endpoint_for(user, receiver.url)
    endpoint_for(user, receiver.url)

    delivery = endpoint_test_send(endpoint)
    events_dispatch_to_webhooks([delivery.event])
    drive(delivery)

    assert WebhookDelivery.objects.filter(event=delivery.event).count() == 1
    (request,) = receiver.received
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "webhook.test"
    assert body["data"]["endpoint_id"] == str(endpoint.pk)


def test_running_an_attempt_twice_posts_once(retry_policy: Any, receiver: Receiver) -> None:
    user = UserFactory()
    endpoint_for(user, receiver.url)
    delivery = only(deliveries_create_for_event(event_for(user)))

    delivery_attempt(delivery.pk)
    delivery_attempt(delivery.pk)

    assert len(receiver.received) == 1
    assert len(attempts_of(delivery)) == 1


def test_the_due_sweep_reschedules_only_overdue_pending_deliveries(
    retry_policy: Any, receiver: Receiver
) -> None:
    user = UserFactory()
    endpoint_for(user, receiver.url, ordered=False)
    overdue = only(deliveries_create_for_event(event_for(user)))
    fresh = only(deliveries_create_for_event(event_for(user)))
    done = drive(only(deliveries_create_for_event(event_for(user))))
    WebhookDelivery.objects.filter(pk=overdue.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=5)
    )

    assert deliveries_due_sweep(grace_seconds=60) == 1

    overdue.refresh_from_db()
    fresh.refresh_from_db()
    assert overdue.next_attempt_at is not None and overdue.next_attempt_at > timezone.now() - timedelta(
        seconds=5
    )
    assert done.status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_an_attempt_is_not_skipped_while_another_attempt_holds_its_endpoint(
    retry_policy: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers delivering to one endpoint: the claim locks the delivery's row only, so the
    endpoint row another attempt holds while recording its outcome does not make it skip."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    monkeypatch.setattr("webhooks.services.delivery._schedule_attempt", lambda *a, **k: None)
    user = UserFactory()
    endpoint, _ = endpoint_for(user, receiver.url, ordered=False)
    event = Event.objects.create(user=user, seq=1, type="order.filled", data={"order_id": "o-1"})
    delivery = only(deliveries_create_for_event(event))
    locked, release = threading.Event(), threading.Event()

    def hold_endpoint() -> None:
        try:
            with transaction.atomic():
                WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
                locked.set()
                release.wait(1.0)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_endpoint)
    holder.start()
    try:
        assert locked.wait(10)
        delivery_attempt(delivery.pk)  # claims at once; records once the holder lets go
    finally:
        release.set()
        holder.join()

    delivery.refresh_from_db()
    assert delivery.status == Status.SUCCEEDED
    assert len(receiver.received) == 1
