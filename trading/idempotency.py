"""``Idempotency-Key`` for writes a client may retry (API.md): the first answer is stored and
replayed with ``Idempotent-Replayed: true``; the same key with another body is 409
``idempotency_key_reused``; a retry while the first is still running is 409
``idempotent_request_in_progress``. Server errors are not stored, so a retry runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from rest_framework.request import Request
from rest_framework.response import Response

from marqetfi.core.api import error_body
from marqetfi.core.errors import ApplicationError
from trading.errors import IdempotencyKeyReused, IdempotentRequestInProgress
from trading.models import IdempotentRequest

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 128


def request_fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(request: Request, handle: Callable[[], Response]) -> Response:
    """Run ``handle`` once per (user, Idempotency-Key); replay its answer to retries."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return handle()
    if len(key) > MAX_KEY_LENGTH:
        raise ApplicationError(
            f"{HEADER} is at most {MAX_KEY_LENGTH} characters.", details={"header": HEADER}
        )
    fingerprint = request_fingerprint(request)
    user: Any = request.user
    try:
        with transaction.atomic():
            record = IdempotentRequest.objects.create(
                user=user,
                key=key,
                method=request.method or "",
                path=request.path,
                request_hash=fingerprint,
            )
    except IntegrityError:
        existing = IdempotentRequest.objects.get(user=user, key=key)
        if existing.request_hash != fingerprint:
            raise IdempotencyKeyReused(details={"key": key}) from None
        if existing.status_code is None:
            raise IdempotentRequestInProgress(details={"key": key}) from None
        return Response(existing.body, status=existing.status_code, headers={REPLAYED_HEADER: "true"})
    try:
        response = handle()
    except Exception as exc:
        _remember_error(record, exc)
        raise
    if response.status_code >= 500:
        record.delete()
    else:
        record.status_code = response.status_code
        record.body = response.data
        record.save(update_fields=["status_code", "body"])
    return response


def _remember_error(record: IdempotentRequest, exc: Exception) -> None:
    """A rejection (4xx) is the answer to replay; anything else lets the client try again."""
    if isinstance(exc, ApplicationError) and exc.status_code < 500:
        record.status_code = exc.status_code
        record.body = error_body(exc.code, exc.message, exc.details)
        record.save(update_fields=["status_code", "body"])
    else:
        record.delete()
