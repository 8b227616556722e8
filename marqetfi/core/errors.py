"""Domain errors with stable machine codes; the API renders them in the one error shape."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """Base of every error a client may see. Subclasses set ``code``, ``status_code`` and a message."""

    code: str = "application_error"
    status_code: int = 400
    default_message: str = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class NotFoundError(ApplicationError):
    code = "not_found"
    status_code = 404
    default_message = "Not found."


class ConflictError(ApplicationError):
    code = "conflict"
    status_code = 409
    default_message = "The request conflicts with the current state."


class InvalidSetting(ApplicationError):
    code = "invalid_setting"
    status_code = 400
    default_message = "The value is not valid for this setting."


class UnknownSetting(NotFoundError):
    code = "unknown_setting"
    default_message = "No such setting."


class DecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


class BadRequestError(ApplicationError):
    code = "bad_request"
    default_message = "Bad request."


class PayloadTooLarge(ApplicationError):
    code = "payload_too_large"
    status_code = 413
    default_message = "The request body is larger than this service accepts."


class DependencyUnavailable(ApplicationError):
    """A service the request needs (the database, Redis) cannot be reached right now.

    503 with ``Retry-After``: the request is worth repeating once the dependency is back, which
    needs no restart of ours (see the README's faults table).
    """

    status_code = 503
    retry_after_seconds = 5

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(
            message, details={"retry_after_seconds": self.retry_after_seconds, **(details or {})}
        )


class DatabaseUnavailable(DependencyUnavailable):
    code = "database_unavailable"
    default_message = "The database cannot be reached right now; retry shortly."


class RedisUnavailable(DependencyUnavailable):
    code = "redis_unavailable"
    default_message = "A service this request needs (Redis) cannot be reached right now; retry shortly."
