"""Operators' screens for deposits: every deposit with its history and swap attempts, the
swaps, and how far each chain was scanned. All read-only (the intake and the state machine
write these rows); operators act through two audited actions, retry and resolve, which the
services carry out with the operator recorded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from accounts.models import User
from deposits.models import ChainScanCursor, Deposit, DepositStatus, DepositTransition, Swap
from deposits.services import operators
from marqetfi.core.admin_audit import AuditedModelAdmin
from marqetfi.core.errors import ApplicationError
from marqetfi.core.formats import decimal_text

# What the admin actions act on: a deposit the state machine gave up on. A deposit still under
# way is the machine's; resolving one by hand (it is stuck) is for the staff API.
ACTIONABLE_STATUSES = (DepositStatus.FAILED, DepositStatus.REFUNDED)
MAX_CREDIT = Decimal(10) ** 12


class ReadOnlyAdmin(AuditedModelAdmin):
    """Look, never edit: the deposit services write these rows."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class DepositTransitionInline(ReadOnlyInline):
    model = DepositTransition
    fields = ("created_at", "from_status", "to_status", "reason", "actor", "details")
    readonly_fields = fields
    ordering = ("created_at", "id")
    verbose_name_plural = "history"

    def get_queryset(self, request: HttpRequest) -> QuerySet[DepositTransition]:
        return super().get_queryset(request).select_related("actor")


class SwapInline(ReadOnlyInline):
    model = Swap
    fields = (
        "attempt",
        "status",
        "provider",
        "tool",
        "from_amount_raw",
        "quoted_to_amount_raw",
        "received_amount_raw",
        "tx_hash",
        "provider_status",
        "provider_substatus",
        "failure_code",
        "created_at",
        "finished_at",
    )
    readonly_fields = fields
    ordering = ("attempt",)


class DepositResolveForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    credit_amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.000001"),
        max_value=MAX_CREDIT,
        max_digits=24,
        decimal_places=6,
        help_text="USDC to credit the user (funds recovered outside the state machine). Leave empty "
        "to close the deposit as failed with nothing credited.",
    )

    def __init__(self, *args: Any, selected: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selected = selected

    def clean(self) -> dict[str, Any]:
        cleaned = cast(dict[str, Any], super().clean())
        if cleaned.get("credit_amount") is not None and self.selected > 1:
            raise forms.ValidationError("A credit amount is for one deposit: select only that deposit.")
        return cleaned


def _refused(
    model_admin: admin.ModelAdmin, request: HttpRequest, deposit: Deposit, exc: ApplicationError
) -> None:
    model_admin.message_user(request, f"{deposit}: {exc.message}", messages.ERROR)


@admin.register(Deposit)
class DepositAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user_email",
        "chain_id",
        "token_symbol",
        "amount_display",
        "status",
        "confirmations_display",
        "credited_amount",
        "swap_attempts",
    )
    list_filter = ("status", "chain_id", "source", "token_symbol")
    search_fields = ("tx_hash", "user__email", "to_address", "from_address", "=id")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    inlines = (SwapInline, DepositTransitionInline)
    actions = ("retry_failed_swap", "resolve_manually")
    readonly_fields = (
        "id",
        "user",
        "wallet",
        "status",
        "source",
        "chain_id",
        "tx_hash",
        "log_index",
        "block_number",
        "block_hash",
        "from_address",
        "to_address",
        "token_symbol",
        "token_address",
        "token_decimals",
        "amount_raw",
        "amount_display",
        "confirmations",
        "confirmations_required",
        "swap_attempts",
        "credited_amount",
        "credited_at",
        "credit_transaction",
        "failure_code",
        "failure_reason",
        "next_action_at",
        "step_failures",
        "resource_version",
        "completed_at",
        "created_at",
        "updated_at",
    )

    # The rows stay read-only on their pages; the actions are what changing them means here.
    def has_retry_swap_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("deposits.retry_swap"))

    def has_resolve_deposit_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("deposits.resolve_deposit"))

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: Deposit) -> str:
        return obj.user.email or str(obj.user_id)

    @admin.display(description="amount", ordering="amount_raw")
    def amount_display(self, obj: Deposit) -> str:
        return f"{decimal_text(obj.amount)} {obj.token_symbol}"

    @admin.display(description="confirmations", ordering="confirmations")
    def confirmations_display(self, obj: Deposit) -> str:
        return f"{obj.confirmations} / {obj.confirmations_required}"

    def _actionable(self, request: HttpRequest, queryset: QuerySet[Deposit], verb: str) -> list[Deposit]:
        """The selected deposits the actions may touch; each other one gets a message saying why not."""
        chosen = []
        for deposit in queryset.order_by("created_at"):
            if deposit.status in ACTIONABLE_STATUSES:
                chosen.append(deposit)
            else:
                self.message_user(
                    request,
                    f"{deposit}: not {verb}, it is {deposit.status}; only a failed or refunded deposit is.",
                    messages.WARNING,
                )
        return chosen

    @admin.action(description="Retry the failed swap", permissions=["retry_swap"])
    def retry_failed_swap(self, request: HttpRequest, queryset: QuerySet[Deposit]) -> None:
        retried = 0
        for deposit in self._actionable(request, queryset, "retried"):
            try:
                operators.deposit_retry(
                    deposit=deposit, actor=cast(User, request.user), reason="admin action"
                )
            except ApplicationError as exc:
                _refused(self, request, deposit, exc)
            else:
                retried += 1
        if retried:
            self.message_user(
                request,
                f"{retried} deposit(s) sent back to the state machine with a fresh quote.",
                messages.SUCCESS,
            )

    @admin.action(description="Resolve manually", permissions=["resolve_deposit"])
    def resolve_manually(self, request: HttpRequest, queryset: QuerySet[Deposit]) -> TemplateResponse | None:
        """Ask for a reason and an optional credit amount, then resolve each selected failed deposit."""
        deposits = self._actionable(request, queryset, "resolved")
        if not deposits:
            return None
        applying = "apply" in request.POST
        form = DepositResolveForm(request.POST if applying else None, selected=len(deposits))
        if applying and form.is_valid():
            resolved = 0
            for deposit in deposits:
                try:
                    operators.deposit_resolve(
                        deposit=deposit,
                        actor=cast(User, request.user),
                        reason=form.cleaned_data["reason"],
                        credit_amount=form.cleaned_data["credit_amount"],
                    )
                except ApplicationError as exc:
                    _refused(self, request, deposit, exc)
                else:
                    resolved += 1
            if resolved:
                amount = form.cleaned_data["credit_amount"]
                outcome = f"credited {amount} USDC" if amount is not None else "closed as failed"
                self.message_user(request, f"{resolved} deposit(s) resolved: {outcome}.", messages.SUCCESS)
            return None
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Resolve deposits manually",
            "opts": self.model._meta,
            "form": form,
            "deposits": deposits,
            "action_name": request.POST.get("action", ""),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/deposits/deposit_resolve.html", context)


@admin.register(Swap)
class SwapAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "deposit",
        "attempt",
        "provider",
        "tool",
        "status",
        "provider_status",
        "provider_substatus",
        "tx_hash",
        "failure_code",
        "finished_at",
    )
    list_filter = ("status", "provider")
    search_fields = ("tx_hash", "receiving_tx_hash", "approval_tx_hash", "deposit__tx_hash", "=id")
    list_select_related = ("deposit",)
    date_hierarchy = "created_at"
    readonly_fields = tuple(field.name for field in Swap._meta.concrete_fields)


@admin.register(ChainScanCursor)
class ChainScanCursorAdmin(ReadOnlyAdmin):
    list_display = ("chain_id", "last_block", "last_block_hash", "updated_at")
    readonly_fields = ("chain_id", "last_block", "last_block_hash", "updated_at")
    ordering = ("chain_id",)
