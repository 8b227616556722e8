"""Operators' screens for the pair catalogue: pairs with how each venue lists them.

Listings come from the venues (``sync_pairs``) and are read-only here; a pair's
descriptive fields, trading hours and ``active`` switch are the operators'.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from marqetfi.core.admin_audit import AuditedModelAdmin
from pricing.models import PairListing, TradingPair
from providers.services.routing import routing_generation


class PairListingInline(admin.TabularInline):
    model = PairListing
    extra = 0
    can_delete = False
    fields = (
        "provider",
        "venue_symbol",
        "tick_size",
        "size_step",
        "min_collateral",
        "max_leverage",
        "active",
        "updated_at",
    )
    readonly_fields = fields
    ordering = ("provider",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TradingPair)
class TradingPairAdmin(AuditedModelAdmin):
    list_display = ("symbol", "display_name", "category", "trading_hours", "active", "venues")
    list_filter = ("category", "trading_hours", "active", "listings__provider")
    search_fields = ("symbol", "display_name", "base", "quote")
    readonly_fields = ("symbol", "created_at", "updated_at")
    fields = (
        "symbol",
        "category",
        "base",
        "quote",
        "display_name",
        "trading_hours",
        "active",
        "created_at",
        "updated_at",
    )
    inlines = (PairListingInline,)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("listings")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The pair and its listings are saved: the processes' cached catalogue is stale."""
        super().save_related(request, form, formsets, change)
        routing_generation.bump()

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        super().delete_model(request, obj)
        routing_generation.bump()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        routing_generation.bump()

    @admin.display(description="venues")
    def venues(self, obj: TradingPair) -> str:
        return ", ".join(sorted(listing.provider for listing in obj.listings.all() if listing.active)) or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
