from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "marqetfi.core"
    label = "core"
    verbose_name = "Platform core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from marqetfi.core import schema  # noqa: F401 - registers the OpenAPI auth extension
        from marqetfi.core.app_settings.signals import app_settings_connect_signals
        from marqetfi.core.authentication import users_connect_signals

        app_settings_connect_signals()
        users_connect_signals()
