"""Maintenance mode: the public API answers 503 while the ``maintenance_mode`` app setting is on.

Only ``/api/v1/`` is closed. Exempt: ``GET``/``HEAD /api/v1/health`` (load balancers keep the
nodes in rotation and operators can watch them), the admin API under ``/api/v1/admin/`` and
Django's admin under ``/admin/``, so operators can work and switch the mode off again. Staff
cannot be told apart here (the API authenticates with JWT in the view, after middleware),
which is why the exemption is by path. WebSocket connections are not affected.

It sits after ``CorsMiddleware`` so that browser apps get their preflight answered and can
read the 503 and its message.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from marqetfi.core.api import error_body
from marqetfi.core.app_settings.cache import app_setting
from marqetfi.core.app_settings.platform import MAINTENANCE_MODE

API_PREFIX = "/api/v1/"
EXEMPT_PREFIXES = ("/api/v1/admin/",)
HEALTH_PATH = "/api/v1/health"
RETRY_AFTER_SECONDS = 60


def _exempt(request: HttpRequest) -> bool:
    path = request.path_info
    if not path.startswith(API_PREFIX) or path.startswith(EXEMPT_PREFIXES):
        return True
    return path == HEALTH_PATH and request.method in ("GET", "HEAD")


class MaintenanceModeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _exempt(request):
            mode = app_setting(MAINTENANCE_MODE)
            if mode.enabled:
                return JsonResponse(
                    error_body("maintenance", mode.message),
                    status=503,
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
        return self.get_response(request)
