"""Changing runtime settings: validated, audited, and announced to every process after commit."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from marqetfi.core.app_settings.cache import app_settings_generation
from marqetfi.core.app_settings.definitions import AppSettingDefinition
from marqetfi.core.app_settings.registry import app_setting_definition
from marqetfi.core.audit import audit_record
from marqetfi.core.errors import InvalidSetting, UnknownSetting
from marqetfi.core.models import AppSetting

__all__ = ["InvalidSetting", "UnknownSetting", "app_setting_reset", "app_setting_set"]


def _locked_row(key: str) -> AppSetting | None:
    return AppSetting.objects.select_for_update().filter(key=key).first()


def _record(
    *, definition: AppSettingDefinition[Any], action: str, actor: Any, before: Any, after: Any
) -> None:
    audit_record(
        actor=actor,
        action=action,
        target_type="app_setting",
        target_id=definition.key,
        changes={"before": before, "after": after},
    )
    app_settings_generation.bump()


@transaction.atomic
def app_setting_set(*, key: str, value: Any, actor: Any) -> Any:
    """Override a setting and return its typed value in effect.

    For an object-shaped setting ``value`` may hold only the entries to change; the others
    keep their current value. Setting what is already stored changes nothing and records
    nothing. Raises ``UnknownSetting`` (404) or ``InvalidSetting`` (400, per-entry errors).
    """
    definition = app_setting_definition(key)
    row = _locked_row(key)
    stored_before = row.value if row is not None else None
    stored = definition.clean(value, stored=stored_before)
    if row is not None and row.value == stored:
        return definition.value(stored)
    before = definition.effective_json(stored_before)
    updated_by = actor if getattr(actor, "pk", None) else None
    if row is None:
        AppSetting.objects.create(key=key, value=stored, updated_by=updated_by)
    else:
        row.value = stored
        row.updated_by = updated_by
        row.save(update_fields=["value", "updated_by", "updated_at"])
    _record(
        definition=definition,
        action="app_setting.set",
        actor=actor,
        before=before,
        after=definition.effective_json(stored),
    )
    return definition.value(stored)


@transaction.atomic
def app_setting_reset(*, key: str, actor: Any) -> Any:
    """Drop the override so the code default applies again; returns the default's typed value."""
    definition = app_setting_definition(key)
    row = _locked_row(key)
    if row is not None:
        before = definition.effective_json(row.value)
        row.delete()
        _record(
            definition=definition,
            action="app_setting.reset",
            actor=actor,
            before=before,
            after=definition.effective_json(),
        )
    return definition.value()
