from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from providers.models import LocalWalletKey


@admin.register(LocalWalletKey)
class LocalWalletKeyAdmin(admin.ModelAdmin):
    """Addresses of the local signer; the encrypted key is never shown, not even as ciphertext."""

    list_display = ("address", "created_at")
    search_fields = ("address",)
    fields = ("id", "address", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LocalWalletKey | None = None) -> bool:
        return False
