"""Announces the endpoint changes after which a user may have an enabled endpoint they did
not have (``webhooks.endpoint_users``): every save through the ORM (services, admin) passes
here. An ``update()`` of the endpoints table that enables a row must bump the generation
itself (none does)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from webhooks.endpoint_users import webhook_endpoints_generation
from webhooks.models import WebhookEndpoint


@receiver(post_save, sender=WebhookEndpoint, dispatch_uid="webhooks.endpoint_saved")
def endpoint_saved(
    sender: Any, instance: WebhookEndpoint, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    if not instance.enabled:
        return
    if created or update_fields is None or {"enabled", "user"} & set(update_fields):
        webhook_endpoints_generation.bump(robust=True)
