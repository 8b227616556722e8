from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate

from backoffice.operator_groups import operator_groups_sync


class BackofficeConfig(AppConfig):
    """What operators see across apps: admin composition, the platform-wide staff APIs and the
    operator groups."""

    default = True  # the admin's config below is named in INSTALLED_APPS explicitly
    name = "backoffice"
    verbose_name = "Back office"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_operator_groups_sync, sender=self, dispatch_uid="backoffice_operator_groups")


def _operator_groups_sync(apps: Any = None, **kwargs: Any) -> None:
    """After every migrate (and every test flush): the groups hold at least what the matrix says.
    ``migrate`` passes its app registry; ``flush`` passes none: the live one serves then."""
    operator_groups_sync(apps=apps or global_apps)


class OperatorsAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` with the operators' console as its default site."""

    default = False
    default_site = "backoffice.sites.OperatorsAdminSite"
