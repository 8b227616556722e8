"""Operators' screens for trading: orders, positions, fills and protective orders are read-only
(they change only through the trading services); risk limits are edited here, through the
same audited service as the admin API."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import User
from marqetfi.core.admin_audit import AuditedModelAdmin
from marqetfi.core.audit import audit_record
from marqetfi.core.errors import ApplicationError
from trading.errors import RiskLimitExists
from trading.models import (
    Fill,
    Order,
    Position,
    ProtectiveOrder,
    ReconciliationDrift,
    RiskLimit,
    VenueReconciliation,
)
from trading.services.orders import order_cancel
from trading.services.positions import position_close
from trading.services.reconciliation import reconciliation_drift_resolve
from trading.services.risk_limits import (
    EDITABLE_FIELDS,
    risk_limit_create,
    risk_limit_delete,
    risk_limit_update,
    risk_limit_validate,
)


class ReadOnlyAdmin(AuditedModelAdmin):
    """Look, never edit: every row here is written by a trading service."""

    list_select_related = ("user",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: Any) -> str:
        return obj.user.email or str(obj.user_id)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_email",
        "symbol",
        "side",
        "type",
        "purpose",
        "status",
        "provider",
        "collateral",
        "leverage",
        "filled_size",
        "avg_fill_price",
    )
    list_filter = ("status", "provider", "symbol", "purpose")
    search_fields = ("user__email", "client_order_id", "=id")
    actions = ("cancel_orders",)

    def has_cancel_order_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("trading.cancel_order"))

    @admin.action(
        description="Cancel the selected resting orders (collateral back)", permissions=["cancel_order"]
    )
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """What the trader's own cancel does (``order_cancel``), for an operator: only orders still
        resting in our book can be cancelled; the others are named and left alone."""
        cancelled = 0
        for order in queryset.select_related("user").order_by("created_at"):
            try:
                order_cancel(order_id=order.pk, user=order.user)
            except ApplicationError as exc:
                self.message_user(request, f"{order}: {exc.message}", messages.WARNING)
            else:
                audit_record(
                    actor=request.user,
                    action="order.cancel",
                    target_type="order",
                    target_id=order.pk,
                    changes={"status": {"before": str(order.status), "after": "cancelled"}},
                )
                cancelled += 1
        if cancelled:
            self.message_user(request, f"{cancelled} order(s) cancelled.", messages.SUCCESS)


class BreachFilter(admin.SimpleListFilter):
    """What operators look at first: positions that were margin-called or liquidated."""

    title = "breaches"
    parameter_name = "breach"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("any", "Margin-called or liquidated"),
            ("margin_called", "Margin-called"),
            ("liquidated", "Liquidated"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Position]) -> QuerySet[Position]:
        liquidated = Q(status=Position.Status.LIQUIDATED)
        margin_called = Q(margin_called_at__isnull=False)
        chosen = {"any": margin_called | liquidated, "margin_called": margin_called, "liquidated": liquidated}
        condition = chosen.get(self.value() or "")
        return queryset.filter(condition) if condition is not None else queryset


class FillInline(ReadOnlyInline):
    model = Fill
    fk_name = "position"
    fields = ("created_at", "kind", "size", "price", "fee", "realized_pnl", "order")
    readonly_fields = fields
    ordering = ("created_at",)


class ProtectiveOrderInline(ReadOnlyInline):
    model = ProtectiveOrder
    fk_name = "position"
    fields = ("kind", "status", "execution_mode", "trigger_price", "fired_at", "fired_price")
    readonly_fields = fields


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    actions = ("close_positions",)

    def has_close_position_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("trading.close_position"))

    @admin.action(description="Close the selected positions at market", permissions=["close_position"])
    def close_positions(self, request: HttpRequest, queryset: QuerySet[Position]) -> None:
        """A market close through the position's venue, as the trader's own (``position_close``,
        ``closed_by`` operator); one whose close is already pending, or that is closed, is left."""
        closed = 0
        for position in queryset.order_by("created_at"):
            try:
                order = position_close(position_id=position.pk, closed_by="operator")
            except ApplicationError as exc:
                self.message_user(request, f"{position}: {exc.message}", messages.WARNING)
                continue
            audit_record(
                actor=request.user,
                action="position.close",
                target_type="position",
                target_id=position.pk,
                changes={"close_order": str(order.pk) if order else None, "size": str(position.size)},
            )
            closed += 1
        if closed:
            self.message_user(request, f"{closed} position(s) closed or closing.", messages.SUCCESS)

    list_display = (
        "created_at",
        "user_email",
        "symbol",
        "side",
        "provider",
        "status",
        "size",
        "entry_price",
        "collateral",
        "leverage",
        "liquidation_price",
        "margin_called_at",
        "realized_pnl",
        "closed_at",
    )
    list_filter = (BreachFilter, "status", "provider", "category")
    search_fields = ("user__email", "symbol", "=id", "venue_position_id")
    inlines = (FillInline, ProtectiveOrderInline)


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_email",
        "kind",
        "symbol",
        "side",
        "provider",
        "size",
        "price",
        "fee",
        "realized_pnl",
    )
    list_filter = ("kind", "provider", "symbol")
    search_fields = ("user__email", "=id", "=order__id", "=position__id")


@admin.register(ProtectiveOrder)
class ProtectiveOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_email",
        "symbol",
        "side",
        "kind",
        "status",
        "execution_mode",
        "trigger_price",
        "fired_at",
        "fired_price",
    )
    list_filter = ("kind", "status", "execution_mode")
    search_fields = ("user__email", "symbol", "=id", "=position__id")


class RiskLimitForm(forms.ModelForm):
    class Meta:
        model = RiskLimit
        fields = EDITABLE_FIELDS

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        existing = None if self.instance._state.adding else self.instance.pk
        try:
            risk_limit_validate(values=dict(data), risk_limit_id=existing)
        except RiskLimitExists as exc:
            # On a field, so that the model's own check of the same constraint stays quiet.
            self.add_error("symbol", exc.message)
        except ApplicationError as exc:
            for field, messages in exc.details.items():
                self.add_error(None if field == "non_field_errors" else field, messages)
        return data


@admin.register(RiskLimit)
class RiskLimitAdmin(AuditedModelAdmin):
    """Saves and deletes go through the risk limit service: validated and audited."""

    form = RiskLimitForm
    list_display = (
        "__str__",
        "user",
        "symbol",
        "max_leverage",
        "max_position_notional",
        "max_total_notional",
        "max_open_positions",
        "liquidation_level",
        "note",
        "updated_at",
    )
    list_filter = ("symbol",)
    search_fields = ("user__email", "symbol", "note")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    fields = EDITABLE_FIELDS

    def save_model(self, request: HttpRequest, obj: RiskLimit, form: Any, change: bool) -> None:
        values = {field: form.cleaned_data.get(field) for field in EDITABLE_FIELDS}
        if change:
            risk_limit_update(risk_limit_id=obj.pk, actor=cast(User, request.user), **values)
        else:
            obj.pk = risk_limit_create(actor=cast(User, request.user), **values).pk

    def delete_model(self, request: HttpRequest, obj: RiskLimit) -> None:
        risk_limit_delete(risk_limit_id=obj.pk, actor=cast(User, request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RiskLimit]) -> None:
        for limit in queryset:
            risk_limit_delete(risk_limit_id=limit.pk, actor=cast(User, request.user))


@admin.register(ReconciliationDrift)
class ReconciliationDriftAdmin(ReadOnlyAdmin):
    """Drifts between a venue's book and ours; open ones are closed by the action (audited)."""

    list_display = (
        "detected_at",
        "venue",
        "kind",
        "status",
        "account_ref",
        "symbol",
        "user",
        "our_ref",
        "venue_ref",
        "occurrences",
        "last_seen_at",
        "resolved_at",
    )
    list_filter = ("status", "venue", "kind")
    search_fields = ("account_ref", "our_ref", "venue_ref", "symbol", "user__email")
    date_hierarchy = "detected_at"
    actions = ("mark_resolved",)

    def has_resolve_drift_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("trading.resolve_drift"))

    @admin.action(description="Mark resolved (looked into, put right)", permissions=["resolve_drift"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[ReconciliationDrift]) -> None:
        resolved = 0
        for drift in queryset.order_by("detected_at"):
            try:
                reconciliation_drift_resolve(
                    drift_id=drift.pk, actor=cast(User, request.user), reason="marked resolved in the admin"
                )
            except ApplicationError as exc:
                self.message_user(request, f"{drift}: {exc}", messages.WARNING)
            else:
                resolved += 1
        if resolved:
            self.message_user(request, f"{resolved} drift(s) resolved.", messages.SUCCESS)


@admin.register(VenueReconciliation)
class VenueReconciliationAdmin(AuditedModelAdmin):
    """The last reconciliation run of each venue."""

    list_display = (
        "venue",
        "last_finished_at",
        "last_ok_at",
        "last_error",
        "accounts_checked",
        "drifts_found",
        "drifts_repaired",
        "runs",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
