from django.apps import AppConfig


class DemoConfig(AppConfig):
    """``seed_demo`` and the demo market, for ``make run``; no other app imports this one."""

    name = "demo"
    verbose_name = "Demo data"
    default_auto_field = "django.db.models.BigAutoField"
