"""The API conventions of the contract: one error shape for every status, cursor pages,
decimal strings.

Every error >= 400 renders as ``{"error": {"code", "message", "details"}}``, whether DRF,
a domain service or Django itself (404, 400, 403 CSRF, 413, 500) raised it; under
``/api/`` that holds with ``DEBUG`` on too (``marqetfi.core.middleware.ApiErrorMiddleware``).
"""

from __future__ import annotations

import io
import logging
import math
import re
import sqlite3
import sys
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, FieldDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.db.models import Model
from django.http import Http404, HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema_field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, pagination, parsers, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import set_rollback

from marqetfi.core.errors import (
    ApplicationError,
    BadRequestError,
    DatabaseUnavailable,
    DependencyUnavailable,
    PayloadTooLarge,
    RedisUnavailable,
)
from marqetfi.core.formats import canonical_decimal, decimal_digits, decimal_text
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


def django_exception_as_api_error(exc: Exception) -> Exception:
    """Django's request errors as what a client gets for them; anything else unchanged.

    A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` or more fields than
    ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` (body or query string) is 413 ``payload_too_large``;
    another suspicious or bad request is 400. The database or Redis out of reach (refused,
    dropped or timed out connections, a full connection pool) is 503 ``database_unavailable``
    / ``redis_unavailable``: the client may retry, and the same process serves again once the
    dependency is back.
    """
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(details={"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    if type(exc).__name__ in ("TooManyFieldsSent", "TooManyFilesSent"):
        return PayloadTooLarge(
            "The request has too many fields.",
            details={"max_fields": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS},
        )
    if isinstance(exc, SuspiciousOperation | BadRequest):
        return BadRequestError()
    return _dependency_unavailable(exc) or exc


def _dependency_unavailable(exc: Exception) -> DependencyUnavailable | None:
    """The database or Redis out of reach, logged as a warning rather than a 500's traceback:
    the outage shows in /health, it is not a bug."""
    error: DependencyUnavailable
    if isinstance(exc, DatabaseOperationalError | DatabaseInterfaceError) and not _sqlite_bug(exc):
        error = DatabaseUnavailable()
    elif isinstance(exc, RedisConnectionError | RedisTimeoutError):
        error = RedisUnavailable()
    else:
        return None
    logger.warning("%s: %s", error.code, f"{type(exc).__name__}: {exc}"[:300])
    error.__cause__ = exc
    return error


def _sqlite_bug(exc: Exception) -> bool:
    """SQLite reports a missing table or a syntax error as an OperationalError too: a bug to
    show as a 500, where only "database is locked" means the database is busy."""
    return isinstance(exc.__cause__, sqlite3.OperationalError) and "locked" not in str(exc)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes the error shape."""
    exc = django_exception_as_api_error(exc)

    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        body = error_body(exc.code, exc.message, exc.details)
        status_code = exc.status_code
        if isinstance(exc, DependencyUnavailable):
            headers["Retry-After"] = str(exc.retry_after_seconds)
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
        body = internal_error_body()
        status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    set_rollback()
    return Response(body, status=status_code, headers=headers)


def internal_error_body() -> dict[str, Any]:
    return error_body(
        "internal_error",
        "Something went wrong on our side. Quote the request id if you contact support.",
        {"request_id": current_request_id()},
    )


# --- Django's own error views (outside DRF views) -------------------------------------


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    error = django_exception_as_api_error(exception) if exception is not None else None
    if isinstance(error, ApplicationError):
        return JsonResponse(error_body(error.code, error.message, error.details), status=error.status_code)
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def status_error(request: HttpRequest, status_code: int) -> JsonResponse:
    """The error shape for a bare status, when only the status of a failure is known."""
    if status_code == 404:
        return page_not_found(request)
    if status_code == 403:
        return permission_denied(request)
    if status_code >= 500:
        body = (
            internal_error_body()
            if status_code == 500
            else error_body(_STATUS_CODES.get(status_code, "server_error"), "The service could not answer.")
        )
        return JsonResponse(body, status=status_code)
    code = _STATUS_CODES.get(status_code, "error")
    return JsonResponse(error_body(code, code.replace("_", " ").capitalize() + "."), status=status_code)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "You do not have permission to do this."), status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found.", {"path": request.path}), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``, for an exception raised outside a view (a middleware). Django calls it
    while handling that exception, so the database or Redis out of reach is told apart here."""
    raised = sys.exc_info()[1]
    error = django_exception_as_api_error(raised) if isinstance(raised, Exception) else None
    if isinstance(error, DependencyUnavailable):
        return dependency_unavailable_response(error)
    return JsonResponse(internal_error_body(), status=500)


def dependency_unavailable_response(error: DependencyUnavailable) -> JsonResponse:
    response = JsonResponse(error_body(error.code, error.message, error.details), status=error.status_code)
    response["Retry-After"] = str(error.retry_after_seconds)
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return JsonResponse(
        error_body("csrf_failed", "CSRF verification failed.", {"reason": reason}), status=403
    )


class CursorPagination(pagination.CursorPagination):
    """``{"results": [...], "next": url|null}``; ``?limit=`` up to 200.

    A cursor is opaque to clients: one this API did not write (not base64, or a position
    that is no value of the ordering field, such as ``p=not-a-date`` against ``created_at``)
    is a 404 ``not_found`` ("Invalid cursor"), checked before the query runs.
    """

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "-created_at"
    invalid_cursor_message = "Invalid cursor."

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Any:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position: Any) -> None:
        """Refuse a position the ordering field could not hold, so a forged one never reaches SQL."""
        ordering = self.ordering if isinstance(self.ordering, str) else self.ordering[0]
        name = ordering.lstrip("-")
        model: type[Model] | None = getattr(self, "_model", None)
        if "\x00" in position:
            raise exceptions.NotFound(self.invalid_cursor_message)
        if model is None or "__" in name:
            return
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return
        try:
            value = field.to_python(position)  # type: ignore[union-attr]
            field.run_validators(value)  # type: ignore[union-attr]  # integer ranges of the database
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise exceptions.NotFound(self.invalid_cursor_message) from None

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


# --- JSON in ---------------------------------------------------------------------------


MAX_JSON_DEPTH = 64
_JSON_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects in ``text`` nest deeper than ``limit``.

    Checked before decoding: the decoder recurses once per level, so a body of a few hundred
    kilobytes of ``[`` exhausts the recursion limit or, on a thread with a smaller stack,
    the C stack itself (a crash no ``except`` catches).
    """
    depth = 0
    for char in _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing nesting deeper than ``MAX_JSON_DEPTH`` with a 400 ``parse_error``."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        raw = stream.read()
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if json_too_deep(text):
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")
        return super().parse(io.BytesIO(raw), media_type, parser_context)


@extend_schema_field(
    {"type": "string", "format": "decimal", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "example": "100.5"}
)
class DecimalStringField(serializers.Field):
    """A decimal amount: plain decimal text in, plain decimal text out.

    In, a value must be one of:

    - a JSON string of canonical decimal text, ``^-?[0-9]+(\\.[0-9]+)?$``, exactly as sent
      (nothing is stripped: no spaces, exponents, underscores, signs other than one leading
      minus, digits of other scripts, ``NaN`` or ``Infinity``);
    - a JSON integer (``10``): it is exact, so it is read as its decimal text.

    JSON numbers with a fraction or exponent (``100.5``, ``1e30``) are refused: the JSON
    parser has already made a binary float of them, which may not be the number the client
    wrote; send them as strings. Booleans are refused.

    Every writable field declares its range (``min_value`` / ``max_value``, each inclusive
    unless ``min_exclusive`` / ``max_exclusive``), its precision (``max_decimal_places``)
    and ``max_digits``; they are checked on the text, before any arithmetic, and listed in
    the field's ``help_text`` so the OpenAPI schema shows them. A value out of them is a 400
    ``validation_error`` naming the field. Trailing zeros of the fraction do not count as
    decimal places (``"10.50"`` has one).
    """

    default_error_messages = {
        "invalid": 'Send a decimal number as a string of digits with an optional "-" and '
        'fraction, e.g. "100.5".',
        "float": 'Send numbers with a fraction as strings, e.g. "100.5": a JSON float may have lost digits.',
        "max_digits": "At most {max_digits} digits in total.",
        "places": "At most {places} decimal places.",
        "min_value": "Must be at least {limit}.",
        "min_exclusive": "Must be greater than {limit}.",
        "max_value": "Must be at most {limit}.",
        "max_exclusive": "Must be less than {limit}.",
    }

    def __init__(
        self,
        *,
        min_value: Decimal | str | int | None = None,
        max_value: Decimal | str | int | None = None,
        min_exclusive: bool = False,
        max_exclusive: bool = False,
        max_decimal_places: int = 18,
        max_digits: int = 36,
        **kwargs: Any,
    ) -> None:
        self.min_value = None if min_value is None else Decimal(min_value)
        self.max_value = None if max_value is None else Decimal(max_value)
        self.min_exclusive = min_exclusive
        self.max_exclusive = max_exclusive
        self.max_decimal_places = max_decimal_places
        self.max_digits = max_digits
        if not kwargs.get("read_only") and (self.min_value is None or self.max_value is None):
            raise TypeError("An input DecimalStringField needs min_value and max_value.")
        if not kwargs.get("read_only"):
            kwargs["help_text"] = " ".join(filter(None, [kwargs.get("help_text"), self.limits_text()]))
        super().__init__(**kwargs)

    def limits_text(self) -> str:
        """The accepted range and precision in words, e.g. ``0 < x ≤ 1000000; at most 6 decimal places``."""
        low = "<" if self.min_exclusive else "≤"
        high = "<" if self.max_exclusive else "≤"
        return (
            f"Range: {decimal_text(self.min_value or Decimal(0))} {low} x {high} "
            f"{decimal_text(self.max_value or Decimal(0))}; "
            f"at most {self.max_decimal_places} decimal places, {self.max_digits} digits."
        )

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, float):
            self.fail("float")
        if isinstance(data, int):
            if abs(data) >= 10**self.max_digits:
                self.fail("max_digits", max_digits=self.max_digits)
            text = str(data)
        elif isinstance(data, str):
            text = data
        else:
            self.fail("invalid")
        if not canonical_decimal(text):
            self.fail("invalid")
        whole, places = decimal_digits(text)
        if places > self.max_decimal_places:
            self.fail("places", places=self.max_decimal_places)
        if whole + places > self.max_digits:
            self.fail("max_digits", max_digits=self.max_digits)
        value = Decimal(text)
        self._check_range(value)
        return value

    def _check_range(self, value: Decimal) -> None:
        if self.min_value is not None:
            if self.min_exclusive and value <= self.min_value:
                self.fail("min_exclusive", limit=decimal_text(self.min_value))
            if value < self.min_value:
                self.fail("min_value", limit=decimal_text(self.min_value))
        if self.max_value is not None:
            if self.max_exclusive and value >= self.max_value:
                self.fail("max_exclusive", limit=decimal_text(self.max_value))
            if value > self.max_value:
                self.fail("max_value", limit=decimal_text(self.max_value))

    def to_representation(self, value: Decimal) -> str:
        return decimal_text(value)


def decimal_output(**kwargs: Any) -> DecimalStringField:
    """A decimal a response carries: read-only, so no range (``Amount = decimal_output``)."""
    return DecimalStringField(read_only=True, **kwargs)
