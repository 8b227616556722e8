"""``Idempotency-Key`` for writes a client may retry (API.md): the first answer is stored and
replayed with ``Idempotent-Replayed: true``; the same key with another body is 409
``idempotency_key_reused``; a retry while the first is still running is 409
``idempotent_request_in_progress``. Server errors are not stored, so a retry runs again.

A record lives ``IDEMPOTENCY_KEY_TTL_SECONDS`` (then the key may be used for a new request,
and beat purges it); one still without an answer after ``IDEMPOTENCY_IN_PROGRESS_TIMEOUT_SECONDS``
was left by a process that died mid-request, and the next retry runs it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
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
    user = cast(User, request.user)
    record = _claim(request, user=user, key=key, fingerprint=fingerprint)
    if record.status_code is not None:
        return Response(record.body, status=record.status_code, headers={REPLAYED_HEADER: "true"})
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


def _claim(request: Request, *, user: User, key: str, fingerprint: str) -> IdempotentRequest:
    """The record this request runs under (no answer yet), or the finished one to replay."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(
                    user=user,
                    key=key,
                    method=request.method or "",
                    path=request.path,
                    request_hash=fingerprint,
                )
        except IntegrityError:
            existing = IdempotentRequest.objects.filter(user=user, key=key).first()
        if existing is None:  # finished with a server error and deleted meanwhile: start afresh
            continue
        now = timezone.now()
        if not _expired(existing, now) and not _abandoned(existing, now):
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused(details={"key": key})
            if existing.status_code is None:
                raise IdempotentRequestInProgress(details={"key": key})
            return existing
        # Expired or abandoned: take the row over, unless another retry got there first.
        taken = IdempotentRequest.objects.filter(pk=existing.pk, created_at=existing.created_at).update(
            method=request.method or "",
            path=request.path,
            request_hash=fingerprint,
            status_code=None,
            body=None,
            created_at=now,
        )
        if taken:
            existing.refresh_from_db()
            return existing
    raise IdempotentRequestInProgress(details={"key": key})


def _expired(record: IdempotentRequest, now: datetime) -> bool:
    return record.created_at <= now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)


def _abandoned(record: IdempotentRequest, now: datetime) -> bool:
    timeout = timedelta(seconds=settings.IDEMPOTENCY_IN_PROGRESS_TIMEOUT_SECONDS)
    return record.status_code is None and record.created_at <= now - timeout


def idempotent_requests_purge(*, now: datetime | None = None) -> int:
    """Delete the records past their lifetime; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lte=cutoff).delete()
    return deleted


def _remember_error(record: IdempotentRequest, exc: Exception) -> None:
    """A rejection (4xx) is the answer to replay; anything else lets the client try again."""
    if isinstance(exc, ApplicationError) and exc.status_code < 500:
        record.status_code = exc.status_code
        record.body = error_body(exc.code, exc.message, exc.details)
        record.save(update_fields=["status_code", "body"])
    else:
        record.delete()
