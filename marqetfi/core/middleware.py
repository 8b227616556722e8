from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import NotFound, PermissionDenied

from marqetfi.core.api import (
    dependency_unavailable_response,
    django_exception_as_api_error,
    error_body,
    status_error,
)
from marqetfi.core.errors import ApplicationError, DependencyUnavailable
from marqetfi.core.logging import bind_user, request_id_var

logger = logging.getLogger("marqetfi.access")
error_logger = logging.getLogger("marqetfi.api")

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


class ApiErrorMiddleware:
    """Under ``/api/``, every answer >= 400 is the JSON error shape, ``DEBUG`` on or off.

    With ``DEBUG`` on Django answers an unmatched URL, an uncaught exception or a suspicious
    request with its HTML debug page and never calls ``handler404`` / ``handler500``. Here an
    exception a view outside DRF raises is rendered like DRF's (``process_exception``), and
    any other error answer under ``/api/`` that is not JSON is replaced by the shape for its
    status. Pages outside ``/api/`` (the admin) keep Django's own.
    """

    prefix = "/api/"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and request.path.startswith(self.prefix)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = status_error(request, response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(self.prefix):
            return None
        error = django_exception_as_api_error(exception)
        if isinstance(error, DependencyUnavailable):
            return dependency_unavailable_response(error)
        if isinstance(error, ApplicationError):
            body = error_body(error.code, error.message, error.details)
            return JsonResponse(body, status=error.status_code)
        if isinstance(error, NotFound):
            return status_error(request, 404)
        if isinstance(error, PermissionDenied):
            return status_error(request, 403)
        error_logger.error("Unhandled error in %s", request.path, exc_info=exception)
        return status_error(request, 500)
