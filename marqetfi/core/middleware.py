from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from marqetfi.core.logging import bind_user, request_id_var

logger = logging.getLogger("marqetfi.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def valid_request_id(value: str) -> bool:
    """Whether a client's request id may be echoed (short, no spaces or control characters)."""
    return bool(_VALID_REQUEST_ID.match(value))


class RequestIdMiddleware:
    """Echoes a well-formed ``X-Request-ID`` or makes one; logs one access line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.header = settings.REQUEST_ID_HEADER
        self.meta_key = "HTTP_" + self.header.upper().replace("-", "_")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get(self.meta_key, "")
        request_id = incoming if valid_request_id(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        request_id_var.set(request_id)
        bind_user(None)
        started = time.perf_counter()
        response = self.get_response(request)
        response[self.header] = request_id
        logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "http_method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response


@receiver(request_finished)
def _clear_request_context(**kwargs: object) -> None:
    """Cleared only now so that Django's own log lines about the response keep the request id."""
    request_id_var.set(None)
    bind_user(None)
