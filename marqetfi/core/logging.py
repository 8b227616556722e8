"""Structured JSON logs carrying the request id and user id, with secrets masked.

The request context lives in context variables so that it follows a request through
sync and async code alike (asgiref copies the context into its worker threads) and into
Celery tasks (the request id travels in the task headers).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"pass(word|phrase|wd)?|secret|token|api[_-]?key|apikey|private[_-]?key|privkey|"
    r"authorization|cookie|mnemonic|seed[_-]?phrase|credential|signing[_-]?key|"
    r"encryption[_-]?key|^access$|^refresh$|^key$|^jwt$|^otp$|^pin$",
    re.IGNORECASE,
)

# Secrets recognisable by their shape wherever they appear in free text.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
        MASK,
    ),
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), r"\1 " + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_" + MASK),
    # key=value, key: value, "key": "value", 'key': 'value' where the key names a secret.
    (
        re.compile(
            r"""(?P<key>["']?[\w-]*(?:password|passphrase|secret|token|api[_-]?key|apikey|"""
            r"""private[_-]?key|privkey|authorization|cookie|mnemonic|seed[_-]?phrase|"""
            r"""credential|signing[_-]?key)[\w-]*["']?\s*[:=]\s*)"""
            r"""(?P<quote>["']?)(?P<value>(?:Bearer\s+)?[^\s"',;}&]+)(?P=quote)""",
            re.IGNORECASE,
        ),
        r"\g<key>\g<quote>" + MASK + r"\g<quote>",
    ),
]


def current_request_id() -> str | None:
    return request_id_var.get()


def bind_user(user_id: object | None) -> None:
    """Attach the authenticated user to every log line of the current request or task."""
    user_id_var.set(str(user_id) if user_id is not None else None)


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SENSITIVE_KEY.search(key))


def redact(value: Any, _depth: int = 0) -> Any:
    """Mask values under sensitive keys and secret-shaped substrings, recursively."""
    if _depth > 8:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if is_sensitive_key(k) and v not in (None, "") else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v, _depth + 1) for v in value)
    return value


_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``user_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        return True


class RedactingFilter(logging.Filter):
    """Masks secrets in the message, its arguments, extra fields and tracebacks.

    It rewrites the record in place, so every handler after it sees the masked version.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.args:
                args = record.args
                record.args = redact(args) if isinstance(args, Mapping) else tuple(redact(a) for a in args)
            message = record.getMessage() if not isinstance(record.msg, Mapping) else record.msg
            record.msg = redact(message)
            record.args = None
            for key, value in list(record.__dict__.items()):
                if key in _STANDARD_ATTRS or key in ("request_id", "user_id"):
                    continue
                record.__dict__[key] = MASK if is_sensitive_key(key) else redact(value)
            if record.exc_info and record.exc_info[0] is not None:
                record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)))
                record.exc_info = None
            elif record.exc_text:
                record.exc_text = redact_text(record.exc_text)
            if record.stack_info:
                record.stack_info = redact_text(record.stack_info)
        except Exception:  # noqa: BLE001 - a logging filter must never break the caller
            record.msg, record.args = "log record dropped by redaction filter", None
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id, user_id, extras."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s")
        super().__init__(*args, **kwargs)
