"""Every change made in the admin goes to the audit log: who, what, before / after.

``AuditedModelAdmin`` is the base of our ModelAdmins. It records

* a save (add or change form): the fields that changed, before and after, many-to-many
  fields included (a user's groups and permissions);
* a delete (one row or the bulk action): the row as it was;
* an admin action: the fields it changed on each selected row, unless the service it calls
  already audited the change (one row per change, never two).

Secret fields (names holding ``password``, ``secret``, ``private_key`` or ``encrypted``, or
listed in ``audit_secret_fields``) are never written: a changed secret appears as
``"changed"``. ModelAdmins whose ``save_model`` / ``delete_model`` call an audited service
instead of the default save do not call these, so the service's audit row is the only one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import Max, QuerySet
from django.forms import Form
from django.http import HttpRequest

from marqetfi.core.audit import audit_record
from marqetfi.core.models import AuditEntry

SECRET_MARKERS = ("password", "secret", "private_key", "encrypted")
MASKED = "changed"
_PENDING = "_audit_pending"

ActionFunc = Callable[[Any, HttpRequest, QuerySet[Any]], Any]


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves, deletes and actions are written to the audit log."""

    audit_secret_fields: tuple[str, ...] = ()

    # -- what a row looks like in the log ---------------------------------------------------

    def audit_is_secret(self, name: str) -> bool:
        return name in self.audit_secret_fields or any(marker in name for marker in SECRET_MARKERS)

    def audit_snapshot(self, obj: models.Model) -> dict[str, Any]:
        """The row's own columns (not ``auto_now`` stamps), by attribute name."""
        return {
            field.attname: field.value_from_object(obj)
            for field in obj._meta.concrete_fields
            if not getattr(field, "auto_now", False)
        }

    def audit_diff(self, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name in sorted(set(before) | set(after)):
            old, new = before.get(name), after.get(name)
            if old == new:
                continue
            changes[name] = MASKED if self.audit_is_secret(name) else {"before": old, "after": new}
        return changes

    def audit_write(
        self, request: HttpRequest, obj: models.Model, action: str, changes: dict[str, Any]
    ) -> None:
        opts = obj._meta
        audit_record(
            actor=request.user,
            action=f"admin.{action}",
            target_type=f"{opts.app_label}.{opts.model_name}",
            target_id=obj.pk,
            changes=changes,
        )

    # -- saves -------------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        before = self.audit_snapshot(stored) if stored is not None else {}
        super().save_model(request, obj, form, change)
        setattr(form, _PENDING, (before, change))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Written here, after the many-to-many fields are saved too, as one row per save."""
        super().save_related(request, form, formsets, change)
        pending = getattr(form, _PENDING, None)
        if pending is None:  # save_model went through an audited service instead
            return
        before, change = pending
        obj = form.instance
        changes = self.audit_diff(before, self.audit_snapshot(obj))
        changes.update(self._many_to_many_changes(form, obj))
        if changes or not change:
            self.audit_write(request, obj, "change" if change else "add", changes)

    def _many_to_many_changes(self, form: Form, obj: models.Model) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for field in obj._meta.many_to_many:
            if field.name not in form.changed_data:
                continue
            changes[field.name] = {
                "before": sorted(str(item) for item in form.initial.get(field.name) or []),
                "after": sorted(str(item) for item in form.cleaned_data.get(field.name) or []),
            }
        return changes

    # -- deletes -----------------------------------------------------------------------------

    def _audit_deleted(self, request: HttpRequest, obj: models.Model, before: dict[str, Any]) -> None:
        changes = {
            name: MASKED if self.audit_is_secret(name) else {"before": value, "after": None}
            for name, value in before.items()
        }
        self.audit_write(request, obj, "delete", changes)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        before, pk = self.audit_snapshot(obj), obj.pk
        super().delete_model(request, obj)
        obj.pk = pk  # the row is gone; the log still names it
        self._audit_deleted(request, obj, before)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        rows = [(obj, self.audit_snapshot(obj)) for obj in queryset]
        super().delete_queryset(request, queryset)
        for obj, before in rows:
            obj.pk = before[obj._meta.pk.attname]
            self._audit_deleted(request, obj, before)

    # -- actions -----------------------------------------------------------------------------

    def get_action(self, action: Any) -> tuple[Any, str, str] | None:
        found = super().get_action(action)
        if found is None:
            return None
        func, name, description = found
        return _audited_action(func, name), name, description


def _audited_action(func: ActionFunc, name: str) -> ActionFunc:
    """``func`` recording what it changed on the selected rows; ``functools.wraps`` keeps the
    action's attributes (its ``allowed_permissions`` among them)."""

    @functools.wraps(func)
    def run(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        before = {obj.pk: (obj, modeladmin.audit_snapshot(obj)) for obj in queryset}
        last = AuditEntry.objects.aggregate(last=Max("pk"))["last"] or 0
        response = func(modeladmin, request, queryset)
        if AuditEntry.objects.filter(pk__gt=last, actor_id=request.user.pk).exists():
            return response  # the service (or the delete) audited what it did
        after = {
            obj.pk: modeladmin.audit_snapshot(obj)
            for obj in queryset.model._default_manager.filter(pk__in=before)
        }
        for pk, (obj, old) in before.items():
            changes = modeladmin.audit_diff(old, after.get(pk, {}))
            if changes:
                modeladmin.audit_write(request, obj, f"action.{name}", changes)
        return response

    return run
