from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """What operators see across apps: admin composition and the platform-wide staff APIs."""

    name = "backoffice"
    verbose_name = "Back office"
    default_auto_field = "django.db.models.BigAutoField"
