from django.apps import AppConfig


class PricingConfig(AppConfig):
    name = "pricing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import pricing.metrics  # noqa: F401 - registers the price cache counters for /metrics
