from django.urls import path

from marqetfi.core.consumers import StreamConsumer

websocket_urlpatterns = [
    path("ws", StreamConsumer.as_asgi()),
]
