from __future__ import annotations

from typing import Any

from marqetfi.core.logging import current_request_id
from marqetfi.core.models import AuditEntry


def audit_record(
    *, actor: Any, action: str, target_type: str, target_id: object, changes: dict[str, Any]
) -> AuditEntry:
    """Record an operator's change; call inside the transaction that makes it."""
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        changes=changes,
        request_id=current_request_id() or "",
    )
