"""The API conventions of the contract: one error shape for every status, cursor pages.

Every error >= 400 renders as ``{"error": {"code", "message", "details"}}``, whether DRF,
a domain service or Django itself (404, 400, 403 CSRF, 500) raised it.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, pagination, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from marqetfi.core.errors import ApplicationError
from marqetfi.core.logging import current_request_id

logger = logging.getLogger("marqetfi.api")

_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _api_exception_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return error_body("validation_error", "Invalid input.", fields)
    detail: Any = exc.detail
    if isinstance(detail, dict):
        # simplejwt puts {"detail", "code", "messages"} here.
        code = str(detail.get("code") or exc.default_code)
        message = str(detail.get("detail") or exc.default_detail)
        return error_body(code, message, {k: v for k, v in detail.items() if k not in ("detail", "code")})
    code = getattr(detail, "code", None) or exc.default_code
    if code in ("error", "invalid"):
        code = _STATUS_CODES.get(exc.status_code, "error")
    details: dict[str, Any] = {}
    if (wait := _throttle_wait(exc)) is not None:
        details["retry_after_seconds"] = wait
    return error_body(str(code), str(detail), details)


def _throttle_wait(exc: Exception) -> int | None:
    """Whole seconds until a throttled client may retry (rounded up), else None."""
    wait = getattr(exc, "wait", None) if isinstance(exc, exceptions.Throttled) else None
    return None if wait is None else math.ceil(wait)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes the error shape."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, exc.details)
        status_code = exc.status_code
    elif isinstance(exc, exceptions.APIException):
        body = _api_exception_body(exc)
        status_code = exc.status_code
        if (wait := _throttle_wait(exc)) is not None:
            headers["Retry-After"] = str(wait)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    else:
        logger.error("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        body = _internal_error_body()
        status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    set_rollback()
    return Response(body, status=status_code, headers=headers)


def _internal_error_body() -> dict[str, Any]:
    return error_body(
        "internal_error",
        "Something went wrong on our side. Quote the request id if you contact support.",
        {"request_id": current_request_id()},
    )


# --- Django's own error views (outside DRF views) -------------------------------------


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "You do not have permission to do this."), status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found.", {"path": request.path}), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_internal_error_body(), status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return JsonResponse(
        error_body("csrf_failed", "CSRF verification failed.", {"reason": reason}), status=403
    )


class CursorPagination(pagination.CursorPagination):
    """``{"results": [...], "next": url|null}``; ``?limit=`` up to 200."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "-created_at"

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
            },
        }


class OldestFirstPagination(CursorPagination):
    """For short lists a client shows in creation order (wallets, sign-in methods)."""

    ordering = "created_at"
