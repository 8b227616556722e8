"""The admin screens that span apps: the User admin with the ledger's credit / debit action, and
the framework's own screens (groups, periodic tasks) with their changes audited too."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from accounts.admin import UserAdmin
from accounts.models import User
from ledger.admin import balance_adjust_action
from marqetfi.core.admin_audit import AuditedModelAdmin


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
        return request.user.has_perm("ledger.adjust_balance")


admin.site.unregister(User)
admin.site.register(User, BackofficeUserAdmin)


class AuditedGroupAdmin(AuditedModelAdmin, GroupAdmin):
    """Operator groups: who may do what; a change of a group's permissions is audited."""


class AuditedPeriodicTaskAdmin(AuditedModelAdmin, beat_admin.PeriodicTaskAdmin):
    pass


class AuditedClockedScheduleAdmin(AuditedModelAdmin, beat_admin.ClockedScheduleAdmin):
    pass


class AuditedCrontabScheduleAdmin(AuditedModelAdmin, beat_admin.CrontabScheduleAdmin):
    pass


class AuditedSolarScheduleAdmin(AuditedModelAdmin, beat_admin.SolarScheduleAdmin):
    pass


class AuditedIntervalScheduleAdmin(AuditedModelAdmin, beat_admin.IntervalScheduleAdmin):
    pass


for model, model_admin in (
    (Group, AuditedGroupAdmin),
    (PeriodicTask, AuditedPeriodicTaskAdmin),
    (ClockedSchedule, AuditedClockedScheduleAdmin),
    (CrontabSchedule, AuditedCrontabScheduleAdmin),
    (SolarSchedule, AuditedSolarScheduleAdmin),
    (IntervalSchedule, AuditedIntervalScheduleAdmin),
):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
