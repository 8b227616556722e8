"""Webhook endpoints: create, change, delete, rotate the secret, and operators' enable / disable.

The URL is checked by the SSRF guard (``webhooks.ssrf``) whenever it is set, before the row is
written; the delivery engine checks it again before every attempt. The secret (``whsec_...``)
is stored encrypted and handed back only by create and rotate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from marqetfi.core.audit import audit_record
from marqetfi.core.crypto import encrypt
from webhooks.errors import (
    UnknownEventType,
    WebhookEndpointDisabledByOperator,
    WebhookEndpointLimitReached,
)
from webhooks.event_types import EVENT_TYPES
from webhooks.models import WebhookEndpoint
from webhooks.signing import secret_new
from webhooks.ssrf import url_check

Reason = WebhookEndpoint.DisabledReason


def endpoint_url_validate(url: str) -> None:
    """Raise ``WebhookUrlRefused`` (400, the guard's code) unless ``url`` may receive webhooks."""
    url_check(url)


def event_types_clean(event_types: Iterable[str]) -> list[str]:
    """Known event types, deduplicated in the order given; an empty list means every type."""
    wanted = list(dict.fromkeys(event_types))
    unknown = [event_type for event_type in wanted if event_type not in EVENT_TYPES]
    if unknown:
        raise UnknownEventType(
            f"Unknown event types: {', '.join(unknown)}.",
            details={"event_types": unknown, "known": list(EVENT_TYPES)},
        )
    return wanted


def _lock(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)


def endpoint_create(
    *,
    user: User,
    url: str,
    event_types: Iterable[str] = (),
    description: str = "",
    enabled: bool = True,
    ordered: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret; the secret is not readable from the row afterwards."""
    types = event_types_clean(event_types)
    endpoint_url_validate(url)
    secret = secret_new()
    with transaction.atomic():
        # The user's row serialises concurrent creates, so the limit holds.
        User.objects.select_for_update().filter(pk=user.pk).first()
        limit = settings.WEBHOOK_MAX_ENDPOINTS_PER_USER
        if WebhookEndpoint.objects.filter(user=user).count() >= limit:
            raise WebhookEndpointLimitReached(details={"limit": limit})
        endpoint = WebhookEndpoint.objects.create(
            user=user,
            url=url,
            description=description,
            event_types=types,
            enabled=enabled,
            disabled_reason=Reason.NONE if enabled else Reason.USER,
            disabled_at=None if enabled else timezone.now(),
            ordered=ordered,
            secret_encrypted=encrypt(secret),
        )
    return endpoint, secret


def _enabled_change(endpoint: WebhookEndpoint, *, enabled: bool, reason: str) -> list[str]:
    """Apply an enable / disable to the locked row; the fields it changed."""
    if enabled == endpoint.enabled:
        return []
    if enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = Reason.NONE
        endpoint.disabled_at = None
        # A fresh start: the failures that disabled it no longer count towards disabling it again.
        endpoint.failing_since = None
    else:
        endpoint.enabled = False
        endpoint.disabled_reason = reason
        endpoint.disabled_at = timezone.now()
    return ["enabled", "disabled_reason", "disabled_at", "failing_since"]


def endpoint_update(
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    ordered: bool | None = None,
) -> WebhookEndpoint:
    """The owner's change; ``None`` leaves a field as it is. Disabling records reason ``user``;
    enabling clears the reason, unless an operator disabled it (409)."""
    types = event_types_clean(event_types) if event_types is not None else None
    if url is not None:
        endpoint_url_validate(url)
    with transaction.atomic():
        locked = _lock(endpoint)
        fields: list[str] = []
        if url is not None and url != locked.url:
            locked.url = url
            fields.append("url")
        if types is not None and types != locked.event_types:
            locked.event_types = types
            fields.append("event_types")
        if description is not None and description != locked.description:
            locked.description = description
            fields.append("description")
        if ordered is not None and ordered != locked.ordered:
            locked.ordered = ordered
            fields.append("ordered")
        if enabled is not None:
            if enabled and not locked.enabled and locked.disabled_reason == Reason.OPERATOR:
                raise WebhookEndpointDisabledByOperator(details={"endpoint_id": str(locked.pk)})
            fields += _enabled_change(locked, enabled=enabled, reason=Reason.USER)
        if fields:
            locked.save(update_fields=[*fields, "updated_at"])
    return locked


@transaction.atomic
def endpoint_delete(endpoint: WebhookEndpoint) -> None:
    """The endpoint, its deliveries, their attempts and its recoveries."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


@transaction.atomic
def endpoint_secret_rotate(endpoint: WebhookEndpoint) -> str:
    """A new secret, returned once. The current one stays valid (deliveries are signed with both)
    for ``WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS``; a secret kept from an earlier rotation is
    dropped. ``endpoint`` is refreshed with the new state."""
    locked = _lock(endpoint)
    secret = secret_new()
    locked.previous_secret_encrypted = locked.secret_encrypted
    locked.previous_secret_expires_at = timezone.now() + timedelta(
        seconds=settings.WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS
    )
    locked.secret_encrypted = encrypt(secret)
    locked.save(
        update_fields=[
            "secret_encrypted",
            "previous_secret_encrypted",
            "previous_secret_expires_at",
            "updated_at",
        ]
    )
    endpoint.refresh_from_db()
    return secret


@transaction.atomic
def endpoints_operator_set_enabled(*, endpoint_ids: Iterable[Any], enabled: bool, actor: Any) -> int:
    """An operator enables or disables endpoints (reason ``operator``); each change is audited.
    Returns how many changed."""
    changed = 0
    for endpoint in (
        WebhookEndpoint.objects.select_for_update().filter(pk__in=list(endpoint_ids)).order_by("pk")
    ):
        before = {"enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason}
        fields = _enabled_change(endpoint, enabled=enabled, reason=Reason.OPERATOR)
        if not fields:
            continue
        endpoint.save(update_fields=[*fields, "updated_at"])
        audit_record(
            actor=actor,
            action="webhook_endpoint.enable" if enabled else "webhook_endpoint.disable",
            target_type="webhook_endpoint",
            target_id=endpoint.pk,
            changes={
                "before": before,
                "after": {"enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason},
            },
        )
        changed += 1
    return changed
