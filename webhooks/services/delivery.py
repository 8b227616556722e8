"""Webhook deliveries: one per event and endpoint, attempted, retried, redelivered, recovered.

A delivery stores the exact body it signs once, so every attempt sends the same bytes under
the same ``webhook-id`` (the event's public id). An attempt first claims its delivery under a
row lock: it writes the attempt's log row and moves ``next_attempt_at`` to the end of a lease
(the policy's timeout plus a margin), then posts outside any transaction. A second run of
the same task finds the delivery not due and leaves; a worker killed mid-attempt leaves a
lease that expires, after which ``deliveries_due_sweep`` (beat) schedules it again. Receivers
may therefore see a delivery twice, never zero times; they dedupe on ``webhook-id``.

The POST goes to the address the SSRF check resolved just before it (the original host in
``Host`` and, for https, in SNI), so a DNS answer that changes after the check cannot
redirect it. Redirects are not followed.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from celery import current_app
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.crypto import decrypt
from marqetfi.core.events import event_payload, publish
from marqetfi.core.models import Event
from webhooks.app_settings import WEBHOOK_RETRY_POLICY, WebhookRetryPolicy
from webhooks.endpoint_users import users_without_endpoints
from webhooks.errors import WebhookEndpointDisabled, WebhookUrlRefused
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRecovery
from webhooks.signing import delivery_headers
from webhooks.ssrf import CheckedTarget, url_check

logger = logging.getLogger(__name__)

TEST_EVENT_TYPE = "webhook.test"
ENDPOINT_DISABLED_EVENT_TYPE = "account.webhook_disabled"
ATTEMPT_TASK = "webhooks.tasks.webhook_delivery_attempt"
RECOVERY_TASK = "webhooks.tasks.webhook_recovery_run"
RESPONSE_BODY_KEPT = 1024
RESPONSE_BYTES_READ = 4096
# A success updates its endpoint's last_success_at only when it is older than this.
ENDPOINT_SUCCESS_REFRESH = timedelta(seconds=60)
NO_OUTCOME = "no_outcome: the attempt's worker stopped before the answer was recorded"

Pending = WebhookDelivery.Status.PENDING
Succeeded = WebhookDelivery.Status.SUCCEEDED
Failed = WebhookDelivery.Status.FAILED


# --- scheduling -------------------------------------------------------------------------


def _schedule_attempt(delivery_id: Any, *, countdown: float = 0.0) -> None:
    """Send the attempt task once the current transaction commits."""

    def send() -> None:
        current_app.send_task(ATTEMPT_TASK, args=(str(delivery_id),), countdown=max(countdown, 0.0))

    transaction.on_commit(send)


def _retry_delay_seconds(policy: WebhookRetryPolicy, retry: int) -> float:
    """Exponential backoff with equal jitter: between half and all of the policy's delay."""
    ceiling = policy.delay_seconds(retry) * settings.WEBHOOK_RETRY_DELAY_SCALE
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


# --- creation -----------------------------------------------------------------------------


def _event_body(event: Event) -> str:
    return json.dumps(event_payload(event), separators=(",", ":"), cls=DjangoJSONEncoder)


def deliveries_create_for_event(
    event: Event, *, endpoints: Iterable[WebhookEndpoint] | None = None
) -> list[WebhookDelivery]:
    """One delivery of ``event`` per enabled endpoint of its user that takes its type (or to
    exactly ``endpoints``); returns those created now: a second call creates nothing.

    The deliveries go in with one INSERT that skips those already there (the event handed
    over again, or two hand-overs at once: the unique constraint decides), and the ones
    this call inserted get their task after commit."""
    if endpoints is None and event.type == TEST_EVENT_TYPE:
        return []
    targets = _delivery_targets(event, endpoints)
    if not targets:
        return []
    body = _event_body(event)
    now = timezone.now()
    new = [_delivery_new(event, endpoint, body, now) for endpoint in targets]
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(new, ignore_conflicts=True)
        created = list(WebhookDelivery.objects.filter(pk__in=[delivery.pk for delivery in new]))
        for delivery in created:
            _schedule_attempt(delivery.pk)
    return created


def deliveries_create_for_events(events: Sequence[Event]) -> list[WebhookDelivery]:
    """``deliveries_create_for_event`` for a batch of events (one transaction's, handed over by
    the outbox): the endpoints of all their users in one query and the deliveries in one
    INSERT; ``webhook.test`` goes only where it was asked for. Returns those created now.

    Users this process found without an enabled endpoint, since the endpoints last changed,
    are not looked up again (``users_without_endpoints``): a batch of theirs costs no query."""
    events = [event for event in events if event.type != TEST_EVENT_TYPE]
    if not events:
        return []
    stamp, users = users_without_endpoints.candidates(event.user_id for event in events)
    if not users:
        return []
    endpoints: dict[Any, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(user_id__in=users, enabled=True).order_by("pk"):
        endpoints.setdefault(endpoint.user_id, []).append(endpoint)
    users_without_endpoints.remember(stamp, users - endpoints.keys())
    if not endpoints:
        return []
    now = timezone.now()
    new = [
        _delivery_new(event, endpoint, _event_body(event), now)
        for event in events
        for endpoint in endpoints.get(event.user_id, [])
        if endpoint.accepts(event.type)
    ]
    if not new:
        return []
    with transaction.atomic():
        WebhookDelivery.objects.bulk_create(new, ignore_conflicts=True)
        created = list(WebhookDelivery.objects.filter(pk__in=[delivery.pk for delivery in new]))
        for delivery in created:
            _schedule_attempt(delivery.pk)
    return created


def _delivery_targets(event: Event, endpoints: Iterable[WebhookEndpoint] | None) -> list[WebhookEndpoint]:
    if endpoints is not None:
        return list(endpoints)
    return [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(user_id=event.user_id, enabled=True)
        if endpoint.accepts(event.type)
    ]


def _delivery_new(event: Event, endpoint: WebhookEndpoint, body: str, now: datetime) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint=endpoint,
        event=event,
        user_id=event.user_id,
        event_type=event.type,
        event_seq=event.seq,
        webhook_id=event.public_id,
        body=body,
        status=Pending,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


# --- one attempt ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    delivery_id: Any
    attempt_id: int
    round_attempts: int
    url: str
    webhook_id: str
    body: str
    secrets: list[str]
    endpoint_id: Any
    ordered: bool


@dataclass(frozen=True)
class _Answer:
    status_code: int | None
    body: str
    error: str
    latency_ms: int


def _secrets_in_use(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    secrets = [decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        secrets.append(decrypt(endpoint.previous_secret_encrypted))
    return secrets


def _earliest_pending_before(delivery: WebhookDelivery) -> WebhookDelivery | None:
    return (
        WebhookDelivery.objects.filter(
            endpoint_id=delivery.endpoint_id, status=Pending, event_seq__lt=delivery.event_seq
        )
        .order_by("event_seq")
        .first()
    )


def _claim(delivery_id: Any, policy: WebhookRetryPolicy) -> _Claim | None:
    """Lock the delivery and take this attempt, or return None when there is nothing to do now."""
    now = timezone.now()
    with transaction.atomic():
        # Only the delivery's row: a joined endpoint row locked by another delivery's attempt
        # must not make SKIP LOCKED pass over this one.
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != Pending:
            return None
        if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None
        endpoint = delivery.endpoint
        if not endpoint.enabled:
            delivery.status = Failed
            delivery.last_error = "endpoint_disabled"
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
            return None
        if endpoint.ordered and (blocker := _earliest_pending_before(delivery)) is not None:
            # Not before the earlier one's next try; its outcome wakes this one sooner.
            recheck = timedelta(seconds=settings.WEBHOOK_ORDERED_RECHECK_SECONDS)
            delivery.next_attempt_at = max(blocker.next_attempt_at or now, now) + recheck
            delivery.save(update_fields=["next_attempt_at", "updated_at"])
            _schedule_attempt(delivery.pk, countdown=(delivery.next_attempt_at - now).total_seconds())
            return None
        if delivery.round_trigger == WebhookAttempt.Trigger.AUTOMATIC:
            # Never redelivered: every attempt so far was claimed here, one log row each.
            previous = delivery.attempts
        else:
            previous = delivery.attempt_log.aggregate(last=Max("number"))["last"] or 0
        trigger = delivery.round_trigger if delivery.attempts == 0 else WebhookAttempt.Trigger.AUTOMATIC
        attempt = WebhookAttempt.objects.create(
            delivery=delivery, number=previous + 1, trigger=trigger, started_at=now, error=NO_OUTCOME
        )
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(
            seconds=policy.timeout_seconds + settings.WEBHOOK_ATTEMPT_LEASE_MARGIN_SECONDS
        )
        delivery.save(update_fields=["attempts", "next_attempt_at", "updated_at"])
        return _Claim(
            delivery_id=delivery.pk,
            attempt_id=attempt.pk,
            round_attempts=delivery.attempts,
            url=endpoint.url,
            webhook_id=delivery.webhook_id,
            body=delivery.body,
            secrets=_secrets_in_use(endpoint, now),
            endpoint_id=endpoint.pk,
            ordered=endpoint.ordered,
        )


def _pinned_request_target(target: CheckedTarget) -> tuple[str, str]:
    """The URL naming the checked address instead of the host, and the ``Host`` header."""
    parts = urlsplit(target.url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    url = urlunsplit((target.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))
    host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.scheme == "https" else 80
    return url, host if target.port == default_port else f"{host}:{target.port}"


@cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi's CAs), built once per process: loading the
    CA bundle costs tens of milliseconds, more than the rest of an attempt. A client, and so
    its connections, is still made per attempt; only this read-only configuration is shared."""
    return httpx.create_ssl_context(trust_env=False)


def _post(claim: _Claim, policy: WebhookRetryPolicy) -> _Answer:
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = url_check(claim.url)
    except WebhookUrlRefused as refused:
        return _Answer(None, "", f"{refused.code}: {refused.message}", elapsed_ms())
    url, host = _pinned_request_target(target)
    headers = delivery_headers(
        secrets_in_use=claim.secrets, webhook_id=claim.webhook_id, timestamp=timezone.now(), body=claim.body
    )
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with (
            httpx.Client(
                timeout=httpx.Timeout(float(policy.timeout_seconds)),
                follow_redirects=False,
                trust_env=False,
                verify=_tls_context(),
            ) as client,
            client.stream(
                "POST",
                url,
                content=claim.body.encode(),
                headers={**headers, "host": host},
                extensions=extensions,
            ) as response,
        ):
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= RESPONSE_BYTES_READ:
                    break
            text = received.decode(errors="replace")[:RESPONSE_BODY_KEPT]
            return _Answer(response.status_code, text, "", elapsed_ms())
    except httpx.TimeoutException as exc:
        return _Answer(None, "", f"timeout: {type(exc).__name__}", elapsed_ms())
    except (httpx.HTTPError, OSError) as exc:
        return _Answer(None, "", f"connection_error: {exc}"[:1000], elapsed_ms())


def _wake_next_in_line(endpoint_id: Any, *, ordered: bool, now: datetime) -> None:
    """An ordered endpoint's delivery reached a final state: the next one may go now, once
    that state is committed. Woken inside the transaction, the next delivery's own attempt
    (claimed meanwhile) could still see this one pending and put itself off until this one's
    lease ran out (some 45 s), the wake having come and gone."""
    if ordered:
        transaction.on_commit(partial(_wake_following, endpoint_id, now=now))


def _wake_following(endpoint_id: Any, *, now: datetime) -> None:
    following = (
        WebhookDelivery.objects.filter(endpoint_id=endpoint_id, status=Pending).order_by("event_seq").first()
    )
    if following is not None and (following.next_attempt_at is None or following.next_attempt_at > now):
        WebhookDelivery.objects.filter(pk=following.pk, status=Pending).update(next_attempt_at=now)
        _schedule_attempt(following.pk)


def _endpoint_disable(endpoint: WebhookEndpoint, *, reason: str, now: datetime) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
    publish(
        user_id=endpoint.user_id,
        type=ENDPOINT_DISABLED_EVENT_TYPE,
        data={"endpoint_id": str(endpoint.pk), "url": endpoint.url, "reason": reason},
    )
    logger.info("Webhook endpoint %s disabled (%s)", endpoint.pk, reason)


def _record_success(claim: _Claim, answer: _Answer, now: datetime) -> None:
    """A success in three updates, no row read back: the delivery only if this attempt still
    owns it (same round and attempt, still pending; its lease may have run out and another
    attempt taken over), the endpoint only when a change matters (``failing_since`` set, or
    ``last_success_at`` older than ENDPOINT_SUCCESS_REFRESH), so successes to one endpoint
    do not queue on its row."""
    with transaction.atomic():
        owned = WebhookDelivery.objects.filter(
            pk=claim.delivery_id, status=Pending, attempts=claim.round_attempts
        ).update(
            status=Succeeded,
            next_attempt_at=None,
            delivered_at=now,
            last_status_code=answer.status_code,
            last_error=answer.error,
            updated_at=now,
        )
        _attempt_outcome(claim, answer, succeeded=True)
        if not owned:
            return
        WebhookEndpoint.objects.filter(pk=claim.endpoint_id).filter(
            Q(failing_since__isnull=False)
            | Q(last_success_at__isnull=True)
            | Q(last_success_at__lt=now - ENDPOINT_SUCCESS_REFRESH)
        ).update(last_success_at=now, failing_since=None, updated_at=now)
        _wake_next_in_line(claim.endpoint_id, ordered=claim.ordered, now=now)


def _attempt_outcome(claim: _Claim, answer: _Answer, *, succeeded: bool) -> None:
    WebhookAttempt.objects.filter(pk=claim.attempt_id).update(
        latency_ms=answer.latency_ms,
        status_code=answer.status_code,
        response_body=answer.body,
        error=answer.error,
        succeeded=succeeded,
    )


def _record(claim: _Claim, answer: _Answer, policy: WebhookRetryPolicy) -> None:
    now = timezone.now()
    succeeded = answer.status_code is not None and 200 <= answer.status_code < 300
    if succeeded:
        _record_success(claim, answer, now)
        return
    with transaction.atomic():
        _attempt_outcome(claim, answer, succeeded=False)
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=claim.delivery_id).first()
        if delivery is None or delivery.status != Pending or delivery.attempts != claim.round_attempts:
            return  # this attempt's lease ran out and another attempt owns the delivery now
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        delivery.last_status_code = answer.status_code
        delivery.last_error = answer.error
        fields = ["status", "next_attempt_at", "last_status_code", "last_error", "updated_at"]
        if endpoint.failing_since is None:
            endpoint.failing_since = now
            endpoint.save(update_fields=["failing_since", "updated_at"])
        if answer.status_code == 410:
            if endpoint.enabled:
                _endpoint_disable(endpoint, reason=WebhookEndpoint.DisabledReason.GONE, now=now)
        elif endpoint.enabled and endpoint.failing_since <= now - timedelta(
            seconds=settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS
        ):
            _endpoint_disable(endpoint, reason=WebhookEndpoint.DisabledReason.FAILING, now=now)
        if endpoint.enabled and delivery.attempts <= policy.max_retries:
            delay = _retry_delay_seconds(policy, delivery.attempts)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            delivery.save(update_fields=fields)
            _schedule_attempt(delivery.pk, countdown=delay)
            return
        delivery.status = Failed
        delivery.next_attempt_at = None
        delivery.save(update_fields=fields)
        _wake_next_in_line(endpoint.pk, ordered=endpoint.ordered, now=now)


def delivery_attempt(delivery_id: Any) -> None:
    """Make the delivery's due attempt, record it, and schedule the retry if one is left."""
    policy = app_setting(WEBHOOK_RETRY_POLICY)
    claim = _claim(delivery_id, policy)
    if claim is None:
        return
    answer = _post(claim, policy)
    _record(claim, answer, policy)


# --- redelivery, recovery, test -------------------------------------------------------------


@transaction.atomic
def delivery_redeliver(
    delivery: WebhookDelivery, *, trigger: str = WebhookAttempt.Trigger.REDELIVER
) -> WebhookDelivery:
    """Send a finished delivery again: a fresh round of attempts, the same id and body.

    A delivery still pending is left as it is. Raises ``WebhookEndpointDisabled`` when its
    endpoint is disabled.
    """
    locked = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
    if not locked.endpoint.enabled:
        raise WebhookEndpointDisabled(details={"endpoint_id": str(locked.endpoint_id)})
    if locked.status == Pending:
        return locked
    locked.status = Pending
    locked.attempts = 0
    locked.round_trigger = trigger
    locked.next_attempt_at = timezone.now()
    locked.save(update_fields=["status", "attempts", "round_trigger", "next_attempt_at", "updated_at"])
    _schedule_attempt(locked.pk)
    return locked


@transaction.atomic
def endpoint_recover_request(endpoint: WebhookEndpoint, *, since: datetime) -> WebhookRecovery:
    """Ask for every failed delivery of ``endpoint`` created since ``since`` to be sent again."""
    if not endpoint.enabled:
        raise WebhookEndpointDisabled(details={"endpoint_id": str(endpoint.pk)})
    recovery = WebhookRecovery.objects.create(endpoint=endpoint, user_id=endpoint.user_id, since=since)
    transaction.on_commit(lambda: current_app.send_task(RECOVERY_TASK, args=(str(recovery.pk),)))
    return recovery


def recovery_run(recovery_id: Any) -> None:
    """Redeliver (trigger ``recover``) the failed deliveries a recovery asked for, once."""
    with transaction.atomic():
        recovery = (
            WebhookRecovery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=recovery_id)
            .first()
        )
        if recovery is None or recovery.status == WebhookRecovery.Status.DONE:
            return
        requeued = 0
        if recovery.endpoint.enabled:
            failed = WebhookDelivery.objects.filter(
                endpoint_id=recovery.endpoint_id, status=Failed, created_at__gte=recovery.since
            ).order_by("event_seq")
            for delivery in failed:
                delivery_redeliver(delivery, trigger=WebhookAttempt.Trigger.RECOVER)
                requeued += 1
        recovery.status = WebhookRecovery.Status.DONE
        recovery.deliveries_requeued = requeued
        recovery.finished_at = timezone.now()
        recovery.save(update_fields=["status", "deliveries_requeued", "finished_at", "updated_at"])


@transaction.atomic
def endpoint_test_send(endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Publish a ``webhook.test`` event and deliver it to this endpoint alone."""
    if not endpoint.enabled:
        raise WebhookEndpointDisabled(details={"endpoint_id": str(endpoint.pk)})
    event = publish(
        user_id=endpoint.user_id,
        type=TEST_EVENT_TYPE,
        data={"endpoint_id": str(endpoint.pk), "message": "A test event from MarqetFi."},
    )
    (delivery,) = deliveries_create_for_event(event, endpoints=[endpoint])
    return delivery


# --- the safety net -------------------------------------------------------------------------


def deliveries_due_sweep(limit: int = 500, *, grace_seconds: float | None = None) -> int:
    """Schedule again the pending deliveries overdue by more than the grace period (their task
    was lost with a worker or the broker); returns how many."""
    grace = settings.WEBHOOK_SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    now = timezone.now()
    with transaction.atomic():
        overdue = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=Pending, next_attempt_at__lte=now - timedelta(seconds=grace))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if overdue:
            WebhookDelivery.objects.filter(pk__in=overdue).update(next_attempt_at=now)
            for delivery_id in overdue:
                _schedule_attempt(delivery_id)
    if overdue:
        logger.info("Rescheduled %s overdue webhook deliveries", len(overdue))
    return len(overdue)
