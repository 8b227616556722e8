from django.apps import AppConfig


class StreamsConfig(AppConfig):
    """The ``/ws`` stream: prices and each user's outbox events over one WebSocket."""

    name = "streams"
    verbose_name = "Streams"
    default_auto_field = "django.db.models.BigAutoField"
