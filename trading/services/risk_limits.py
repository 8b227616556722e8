"""Operators' changes to ``RiskLimit`` rows, from the admin API and the Django admin alike:
validated, one row per scope (user or everyone, one pair or every pair), each change audited.

``trading.services.risk`` reads the rows when an order is checked; a change applies to the
next order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from django.db import IntegrityError, transaction

from accounts.models import User
from marqetfi.core.audit import audit_record
from marqetfi.core.formats import decimal_text
from pricing.models import TradingPair
from trading.errors import InvalidRiskLimit, RiskLimitExists, RiskLimitNotFound
from trading.models import RiskLimit
from trading.services.risk import risk_limits_generation

LIMIT_FIELDS: Final = (
    "max_leverage",
    "max_position_notional",
    "max_total_notional",
    "max_open_positions",
    "liquidation_level",
)
EDITABLE_FIELDS: Final = ("user", "symbol", *LIMIT_FIELDS, "note")


def _check(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the symbol normalised; raises ``InvalidRiskLimit`` with every field's problem."""
    errors: dict[str, list[str]] = {}
    symbol = (values.get("symbol") or "").strip().upper()
    if symbol and not TradingPair.objects.filter(symbol=symbol).exists():
        errors["symbol"] = ["Unknown pair; leave blank for every pair."]
    leverage = values.get("max_leverage")
    if leverage is not None and leverage < 1:
        errors["max_leverage"] = ["Must be at least 1."]
    for field in ("max_position_notional", "max_total_notional"):
        if values.get(field) is not None and values[field] <= 0:
            errors[field] = ["Must be greater than zero (USDC)."]
    count = values.get("max_open_positions")
    if count is not None and count < 0:
        errors["max_open_positions"] = ["Must not be negative."]
    level = values.get("liquidation_level")
    if level is not None and not Decimal(0) < level < Decimal(1):
        errors["liquidation_level"] = ["Must be strictly between 0 and 1 (share of collateral left)."]
    if all(values.get(field) is None for field in LIMIT_FIELDS):
        errors["non_field_errors"] = ["Set at least one limit."]
    if errors:
        raise InvalidRiskLimit(details=errors)
    return {**values, "symbol": symbol, "note": values.get("note") or ""}


def _scope_taken(*, user: User | None, symbol: str, other_than: Any = None) -> bool:
    rows = RiskLimit.objects.filter(user=user, symbol=symbol)
    if other_than is not None:
        rows = rows.exclude(pk=other_than)
    return rows.exists()


def _scope_details(user: User | None, symbol: str) -> dict[str, Any]:
    return {"user_id": str(user.pk) if user is not None else None, "symbol": symbol}


def risk_limit_validate(*, values: dict[str, Any], risk_limit_id: Any = None) -> dict[str, Any]:
    """Check a whole row's worth of ``EDITABLE_FIELDS`` (as a form or the API has them) without
    writing: ``InvalidRiskLimit``, or ``RiskLimitExists`` when another row has the scope."""
    checked = _check(values)
    if _scope_taken(user=checked.get("user"), symbol=checked["symbol"], other_than=risk_limit_id):
        raise RiskLimitExists(details=_scope_details(checked.get("user"), checked["symbol"]))
    return checked


def risk_limit_public(limit: RiskLimit) -> dict[str, Any]:
    """The row as JSON (audit entries and the admin API)."""
    amounts = {
        field: None if getattr(limit, field) is None else decimal_text(getattr(limit, field))
        for field in LIMIT_FIELDS
        if field != "max_open_positions"
    }
    return {
        "user_id": str(limit.user_id) if limit.user_id else None,
        "symbol": limit.symbol,
        **amounts,
        "max_open_positions": limit.max_open_positions,
        "note": limit.note,
    }


def _save(limit: RiskLimit, update_fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():  # a savepoint: a scope taken meanwhile is a conflict, not a 500
            limit.save(update_fields=update_fields)
        risk_limits_generation.bump()
    except IntegrityError as exc:
        if _scope_taken(user=limit.user, symbol=limit.symbol, other_than=limit.pk):
            raise RiskLimitExists(details=_scope_details(limit.user, limit.symbol)) from exc
        raise


@transaction.atomic
def risk_limit_create(
    *,
    actor: User,
    user: User | None = None,
    symbol: str = "",
    max_leverage: Decimal | None = None,
    max_position_notional: Decimal | None = None,
    max_total_notional: Decimal | None = None,
    max_open_positions: int | None = None,
    liquidation_level: Decimal | None = None,
    note: str = "",
) -> RiskLimit:
    """A limit for ``user`` (None: everyone) on ``symbol`` ("": every pair); audited."""
    values = risk_limit_validate(
        values={
            "user": user,
            "symbol": symbol,
            "max_leverage": max_leverage,
            "max_position_notional": max_position_notional,
            "max_total_notional": max_total_notional,
            "max_open_positions": max_open_positions,
            "liquidation_level": liquidation_level,
            "note": note,
        }
    )
    limit = RiskLimit(**values)
    _save(limit)
    audit_record(
        actor=actor,
        action="risk_limit.create",
        target_type="risk_limit",
        target_id=limit.pk,
        changes=risk_limit_public(limit),
    )
    return limit


@transaction.atomic
def risk_limit_update(*, risk_limit_id: Any, actor: User, **changes: Any) -> RiskLimit:
    """Change some of ``EDITABLE_FIELDS`` (a limit set to None is lifted at this scope); audited
    with the row before and after. Nothing changed: nothing written."""
    if unknown := set(changes) - set(EDITABLE_FIELDS):
        raise InvalidRiskLimit(details={field: ["Not a field of a risk limit."] for field in sorted(unknown)})
    limit = RiskLimit.objects.select_for_update().filter(pk=risk_limit_id).first()
    if limit is None:
        raise RiskLimitNotFound(details={"risk_limit_id": str(risk_limit_id)})
    before = risk_limit_public(limit)
    current = {field: getattr(limit, field) for field in EDITABLE_FIELDS}
    values = risk_limit_validate(values={**current, **changes}, risk_limit_id=limit.pk)
    changed = [field for field in EDITABLE_FIELDS if values[field] != current[field]]
    if not changed:
        return limit
    for field in changed:
        setattr(limit, field, values[field])
    _save(limit, update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        action="risk_limit.update",
        target_type="risk_limit",
        target_id=limit.pk,
        changes={"before": before, "after": risk_limit_public(limit)},
    )
    return limit


@transaction.atomic
def risk_limit_delete(*, risk_limit_id: Any, actor: User) -> None:
    """Remove a limit (the next less specific row, or the default, applies again); audited."""
    limit = RiskLimit.objects.select_for_update().filter(pk=risk_limit_id).first()
    if limit is None:
        raise RiskLimitNotFound(details={"risk_limit_id": str(risk_limit_id)})
    audit_record(
        actor=actor,
        action="risk_limit.delete",
        target_type="risk_limit",
        target_id=limit.pk,
        changes=risk_limit_public(limit),
    )
    limit.delete()
    risk_limits_generation.bump()
