from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models
from django.db.models import Q

from marqetfi.core.models import TimeStampedModel


class Provider(TimeStampedModel):
    """A provider the platform knows (from ``settings.PROVIDERS``) and whether it is switched on."""

    name = models.SlugField(max_length=40, unique=True)
    kind = models.CharField(max_length=16)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ("kind", "name")

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ProviderConfig(models.Model):
    """One immutable version of a provider's configuration; exactly one is active.

    ``settings`` holds plain options (URLs, ids, timeouts); ``secrets_encrypted`` holds the
    secret ones as one Fernet token (``FIELD_ENCRYPTION_KEYS``), never shown anywhere.
    A rollback is a new version copied from an old one, so history only grows.
    """

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="configs")
    version = models.PositiveIntegerField()
    settings = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=False)
    comment = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("provider", "-version")
        constraints = [
            models.UniqueConstraint(fields=("provider", "version"), name="provider_config_version_unique"),
            models.UniqueConstraint(
                fields=("provider",), condition=Q(is_active=True), name="provider_config_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider.name} v{self.version}{' (active)' if self.is_active else ''}"


class RoutingRule(TimeStampedModel):
    """Which venues serve a symbol or a whole category, in order of preference."""

    class Match(models.TextChoices):
        SYMBOL = "symbol", "Symbol"
        CATEGORY = "category", "Category"

    match = models.CharField(max_length=16, choices=Match.choices)
    value = models.CharField(max_length=32, help_text="BTCUSD, or crypto / forex / indices / commodities")
    venues = models.JSONField(help_text='Ordered venue names, primary first: ["lighter", "paper"]')
    enabled = models.BooleanField(default=True)
    updated_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("match", "value")
        constraints = [models.UniqueConstraint(fields=("match", "value"), name="routing_rule_unique")]

    def __str__(self) -> str:
        return f"{self.match}={self.value} -> {' > '.join(self.venues or [])}"


class AppSetting(models.Model):
    """An operator's override of a runtime setting defined in ``providers.app_settings``."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField()
    updated_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class LocalWalletKey(TimeStampedModel):
    """A key of the ``local`` wallet signer (development and demo): encrypted at rest, never served.

    ``idempotency_key`` makes creation safe to retry: the same key returns the same wallet.
    """

    idempotency_key = models.CharField(max_length=200, unique=True)
    address = models.CharField(max_length=42, unique=True)
    encrypted_private_key = models.TextField(help_text="Fernet token under FIELD_ENCRYPTION_KEYS")

    def __str__(self) -> str:
        return self.address
