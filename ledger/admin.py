"""Operators' view of the ledger: read-only accounts and transactions, and the adjustment form
the User changelist offers as an action (``balance_adjust_action``)."""

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
from ledger.models import AMOUNT_DIGITS, AMOUNT_PLACES, LedgerAccount, LedgerEntry, LedgerTransaction
from ledger.selectors import platform_balances, user_balances
from ledger.services import balance_adjust
from marqetfi.core.admin_audit import AuditedModelAdmin
from marqetfi.core.errors import ApplicationError


class ReadOnlyAdmin(AuditedModelAdmin):
    """The ledger changes only through its services: operators look, never edit here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LedgerAccount)
class LedgerAccountAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "user", "kind", "name", "balance", "currency", "updated_at")
    list_filter = ("kind", "currency")
    search_fields = ("user__email", "name", "=id")
    list_select_related = ("user",)
    ordering = ("kind", "name")
    readonly_fields = ("id", "user", "kind", "name", "balance", "currency", "created_at", "updated_at")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """Above the list, each platform account's balance; ``fees`` and ``realized_pnl`` are
        split into shards (rows named ``shard-N``) and shown here as their sum."""
        totals = ", ".join(f"{kind} {balance:f}" for kind, balance in platform_balances().items())
        if totals:
            messages.info(request, f"Platform balances (shards summed): {totals}")
        return super().changelist_view(request, extra_context)


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ("account", "amount")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[LedgerEntry]:
        return super().get_queryset(request).select_related("account__user")


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "kind", "reference", "memo", "actor")
    list_filter = ("kind",)
    search_fields = ("reference", "memo", "=id", "entries__account__user__email")
    list_select_related = ("actor",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "kind", "reference", "memo", "actor", "created_at")
    inlines = (LedgerEntryInline,)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[LedgerTransaction], search_term: str
    ) -> tuple[QuerySet[LedgerTransaction], bool]:
        results, _ = super().get_search_results(request, queryset, search_term)
        return results.distinct(), False


class BalanceAdjustForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=AMOUNT_DIGITS,
        decimal_places=AMOUNT_PLACES,
        help_text="USDC, at most 6 decimal places: positive credits the user, negative debits.",
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_amount(self) -> Decimal:
        amount = cast(Decimal, self.cleaned_data["amount"])
        if amount == 0:
            raise forms.ValidationError("Must not be zero.")
        return amount


def balance_adjust_action(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]
) -> TemplateResponse | None:
    """Ask for an amount and a reason, then post one audited adjustment per selected user."""
    applying = "apply" in request.POST
    form = BalanceAdjustForm(request.POST if applying else None)
    if applying and form.is_valid():
        posted = 0
        for user in queryset:
            try:
                balance_adjust(
                    user=user,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=cast(User, request.user),
                )
            except ApplicationError as exc:
                detail = ", ".join(f"{key} {value}" for key, value in exc.details.items())
                modeladmin.message_user(request, f"{user}: {exc.message} ({detail})", messages.ERROR)
            else:
                posted += 1
        if posted:
            modeladmin.message_user(
                request,
                f"Adjustment of {form.cleaned_data['amount']} USDC posted for {posted} user(s).",
                messages.SUCCESS,
            )
        return None
    context: dict[str, Any] = {
        **modeladmin.admin_site.each_context(request),
        "title": "Credit or debit USDC",
        "opts": modeladmin.model._meta,
        "form": form,
        "rows": [{"user": user, "available": user_balances(user=user).available} for user in queryset],
        "action_name": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/ledger/balance_adjust.html", context)
