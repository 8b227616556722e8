from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from marqetfi.core.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-only view of the outbox: what was published, and whether it went out."""

    list_display = ("created_at", "user", "seq", "type", "dispatched_at", "dispatch_attempts")
    list_filter = ("type", ("dispatched_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "type")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_select_related = ("user",)
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False
