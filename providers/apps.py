from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from providers.app_settings import app_settings_connect_signals
        from providers.metrics import register_collector

        app_settings_connect_signals()
        register_collector()
