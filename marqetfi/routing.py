from django.urls import path

from streams.consumers import StreamConsumer

websocket_urlpatterns = [
    path("ws", StreamConsumer.as_asgi()),
]
