"""Who may call a staff endpoint: a signed-in operator (``is_staff``) holding the permission the
view names for the request's method.

Views under /api/v1/admin/ declare ``staff_permissions``, a mapping of HTTP method to one
Django permission (``"<app_label>.<codename>"``): reads name the model's ``view_`` permission,
writes the action's own permission (``ledger.adjust_balance``...). Operators get permissions
through their operator group (see backoffice.operator_groups). A method the view does not
name is for superusers only, so a forgotten declaration closes the door rather than opening it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

READ_ALIASES = {"HEAD": "GET", "OPTIONS": "GET"}


def staff_permission_for(view: Any, method: str) -> str | None:
    """The permission ``view`` requires for ``method``; None when it names none."""
    required: Mapping[str, str] = getattr(view, "staff_permissions", {}) or {}
    method = method.upper()
    return required.get(method) or required.get(READ_ALIASES.get(method, method))


class StaffPermission(BasePermission):
    """``is_staff`` plus the permission ``view.staff_permissions`` names for the method.

    Anonymous callers are refused as not authenticated (401); staff without the permission
    and traders get 403 in the API error shape.
    """

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        required = staff_permission_for(view, request.method or "GET")
        return required is not None and bool(user.has_perm(required))
