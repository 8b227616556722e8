"""The admin screens that span apps: the User admin with the ledger's credit / debit action."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from accounts.admin import UserAdmin
from accounts.models import User
from ledger.admin import balance_adjust_action


class BackofficeUserAdmin(UserAdmin):
    """accounts' User admin, plus the audited ledger adjustment (accounts imports no ledger)."""

    actions = (*UserAdmin.actions, "adjust_balance")

    @admin.action(
        description="Credit or debit USDC for the selected users (audited ledger adjustment)",
        permissions=["adjust_balance"],
    )
    def adjust_balance(self, request: HttpRequest, queryset: QuerySet[User]) -> TemplateResponse | None:
        return balance_adjust_action(self, request, queryset)

    def has_adjust_balance_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ledger.add_ledgertransaction")


admin.site.unregister(User)
admin.site.register(User, BackofficeUserAdmin)
