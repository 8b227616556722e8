"""Versioned provider configuration: create, activate, roll back, compare, switch on/off.

Versions are immutable once written (only the active flag moves); secrets are stored as
one Fernet token and are write-only: nothing here returns them except to the registry
that builds adapters. Every change is audited and announced to all processes through the
registry's generation counter, so running processes rebuild their adapters within seconds.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.module_loading import import_string

from marqetfi.core import crypto
from marqetfi.core.audit import audit_record
from providers.errors import ConfigVersionNotFound, InvalidProviderConfig, UnknownProvider
from providers.models import LocalWalletKey, Provider, ProviderConfig
from providers.registry import config_generation
from providers.selectors import secrets_decrypt

MASK = "********"


def _entry(name: str) -> dict[str, Any]:
    entry: dict[str, Any] | None = settings.PROVIDERS.get(name)
    if entry is None:
        raise UnknownProvider(details={"provider": name, "known": sorted(settings.PROVIDERS)})
    return entry


def _secrets_encrypt(values: dict[str, Any]) -> str:
    return crypto.encrypt(json.dumps(values, sort_keys=True)) if values else ""


def provider_ensure(name: str) -> Provider:
    entry = _entry(name)
    provider, _ = Provider.objects.get_or_create(name=name, defaults={"kind": entry["kind"]})
    return provider


def _validate(name: str, values: dict[str, Any], secrets: dict[str, Any]) -> None:
    entry = _entry(name)
    secret_fields = set(entry.get("secret_fields", []))
    known = (set(entry.get("options", {})) | set(settings.PROVIDER_OPTIONAL_OPTIONS)) - secret_fields
    errors: dict[str, list[str]] = {}
    for key in values:
        if key in secret_fields:
            errors[key] = ["This is a secret: send it under `secrets`."]
        elif key not in known:
            errors[key] = [f"Unknown option. Known: {', '.join(sorted(known)) or 'none'}."]
    for key in secrets:
        if key not in secret_fields:
            errors[key] = [
                f"Not a secret of this provider. Secrets: {', '.join(sorted(secret_fields)) or 'none'}."
            ]
    if errors:
        raise InvalidProviderConfig(details=errors)
    if entry.get("validate"):
        # The provider's own check of its values (the chains' JSON, say); raises InvalidProviderConfig.
        import_string(entry["validate"])({**entry.get("options", {}), **values, **secrets})


def _activate(config: ProviderConfig) -> None:
    ProviderConfig.objects.filter(provider=config.provider, is_active=True).exclude(pk=config.pk).update(
        is_active=False
    )
    config.is_active = True
    config.activated_at = timezone.now()
    config.save(update_fields=["is_active", "activated_at"])


def _next_version(provider: Provider) -> int:
    current = ProviderConfig.objects.filter(provider=provider).aggregate(v=Max("version"))["v"]
    return int(current or 0) + 1


def _locked_provider(name: str) -> Provider:
    provider = provider_ensure(name)
    return Provider.objects.select_for_update().get(pk=provider.pk)


def _secret_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    changes = {}
    for key in sorted(set(before) | set(after)):
        if key not in after:
            changes[key] = "removed"
        elif key not in before:
            changes[key] = "added"
        elif before[key] != after[key]:
            changes[key] = "changed"
    return changes


@transaction.atomic
def provider_config_create(
    *,
    name: str,
    values: dict[str, Any],
    secrets: dict[str, Any] | None = None,
    comment: str = "",
    actor: Any = None,
    activate: bool = True,
) -> ProviderConfig:
    """Write a new version. Secrets not sent are kept from the active version; a secret sent
    as ``null`` or ``""`` is removed."""
    secrets = secrets or {}
    _validate(name, values, secrets)
    provider = _locked_provider(name)
    active = ProviderConfig.objects.filter(provider=provider, is_active=True).first()
    previous_secrets = secrets_decrypt(active.secrets_encrypted) if active else {}
    merged = {**previous_secrets, **secrets}
    merged = {k: v for k, v in merged.items() if v not in (None, "")}
    config = ProviderConfig.objects.create(
        provider=provider,
        version=_next_version(provider),
        settings=values,
        secrets_encrypted=_secrets_encrypt(merged),
        comment=comment,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    if activate:
        _activate(config)
    audit_record(
        actor=actor,
        action="provider_config.create",
        target_type="provider",
        target_id=name,
        changes={
            "version": config.version,
            "settings": values,
            "secrets": _secret_changes(previous_secrets, merged),
            "activated": activate,
        },
    )
    config_generation.bump()
    return config


def _version(name: str, version: int) -> ProviderConfig:
    config = (
        ProviderConfig.objects.select_related("provider").filter(provider__name=name, version=version).first()
    )
    if config is None:
        raise ConfigVersionNotFound(details={"provider": name, "version": version})
    return config


@transaction.atomic
def provider_config_activate(*, name: str, version: int, actor: Any = None) -> ProviderConfig:
    _locked_provider(name)
    config = _version(name, version)
    previous = ProviderConfig.objects.filter(provider=config.provider, is_active=True).first()
    _activate(config)
    audit_record(
        actor=actor,
        action="provider_config.activate",
        target_type="provider",
        target_id=name,
        changes={"from_version": previous.version if previous else None, "to_version": version},
    )
    config_generation.bump()
    return config


@transaction.atomic
def provider_config_rollback(
    *, name: str, version: int, actor: Any = None, comment: str = ""
) -> ProviderConfig:
    """Make a new active version equal to ``version`` (history is never rewritten)."""
    provider = _locked_provider(name)
    source = _version(name, version)
    config = ProviderConfig.objects.create(
        provider=provider,
        version=_next_version(provider),
        settings=source.settings,
        secrets_encrypted=crypto.rotate(source.secrets_encrypted) if source.secrets_encrypted else "",
        comment=comment or f"Rollback to version {version}",
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    _activate(config)
    audit_record(
        actor=actor,
        action="provider_config.rollback",
        target_type="provider",
        target_id=name,
        changes={"restored_version": version, "new_version": config.version},
    )
    config_generation.bump()
    return config


def provider_config_diff(*, name: str, from_version: int, to_version: int) -> dict[str, Any]:
    """Option by option; secrets only say whether they were added, removed or changed."""
    before, after = _version(name, from_version), _version(name, to_version)
    changed_settings = {
        key: {"from": before.settings.get(key), "to": after.settings.get(key)}
        for key in sorted(set(before.settings) | set(after.settings))
        if before.settings.get(key) != after.settings.get(key)
    }
    return {
        "provider": name,
        "from_version": from_version,
        "to_version": to_version,
        "settings": changed_settings,
        "secrets": _secret_changes(
            secrets_decrypt(before.secrets_encrypted), secrets_decrypt(after.secrets_encrypted)
        ),
    }


def provider_config_fields(name: str) -> tuple[list[str], list[str]]:
    """The options a version of provider ``name`` may set (its catalogue's, then the optional
    ones) and its secrets' names: what a form for a new version asks for."""
    entry = _entry(name)
    secret_fields = list(entry.get("secret_fields", []))
    options = [key for key in entry.get("options", {}) if key not in secret_fields]
    return options, secret_fields


def provider_config_public(config: ProviderConfig) -> dict[str, Any]:
    """What the API and the admin show of a version: secrets masked, by name only."""
    secret_names = sorted(secrets_decrypt(config.secrets_encrypted)) if config.secrets_encrypted else []
    return {
        "provider": config.provider.name,
        "version": config.version,
        "is_active": config.is_active,
        "settings": config.settings,
        "secrets": dict.fromkeys(secret_names, MASK),
        "comment": config.comment,
        "created_by": getattr(config.created_by, "email", None),
        "created_at": config.created_at,
        "activated_at": config.activated_at,
    }


@transaction.atomic
def provider_set_enabled(*, name: str, enabled: bool, actor: Any = None) -> Provider:
    provider = _locked_provider(name)
    if provider.enabled != enabled:
        provider.enabled = enabled
        provider.save(update_fields=["enabled", "updated_at"])
        audit_record(
            actor=actor,
            action="provider.enable" if enabled else "provider.disable",
            target_type="provider",
            target_id=name,
            changes={"enabled": enabled},
        )
        config_generation.bump()
    return provider


@transaction.atomic
def secrets_reencrypt() -> int:
    """Re-encrypt every stored secret under the newest key of ``FIELD_ENCRYPTION_KEYS``.

    Run after putting a new key first; once it has run everywhere, the old key can go.
    """
    count = 0
    for config in ProviderConfig.objects.select_for_update().exclude(secrets_encrypted=""):
        config.secrets_encrypted = crypto.rotate(config.secrets_encrypted)
        config.save(update_fields=["secrets_encrypted"])
        count += 1
    for key in LocalWalletKey.objects.select_for_update():
        key.encrypted_private_key = crypto.rotate(key.encrypted_private_key)
        key.save(update_fields=["encrypted_private_key"])
        count += 1
    return count
