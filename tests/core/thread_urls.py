"""A view that uses the database and reports the thread it ran on."""

from __future__ import annotations

import threading

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path

# The test holds a request in its view until it sets the request's event.
held: dict[str, threading.Event] = {}


def thread_view(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    name = request.GET.get("hold", "")
    if name:
        held.setdefault(name, threading.Event()).wait(10)
    return JsonResponse({"thread": threading.get_ident()})


urlpatterns = [path("thread", thread_view)]
