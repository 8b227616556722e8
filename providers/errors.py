from __future__ import annotations

from typing import Any

from marqetfi.core.errors import ApplicationError, NotFoundError


class ProviderError(Exception):
    """A call to an external provider failed; carries what the provider answered.

    ``retryable`` is true for timeouts, connection errors, 429 and 5xx: the same call may
    succeed later, no sooner than ``retry_after`` seconds from now when the provider said so
    (``Retry-After``, a rate-limit reset). ``code`` is the provider's own error code when it
    sent one (LI-FI's 1002 "no quote", ...). Services translate these into domain errors; a
    raw vendor error never reaches an API client.
    """

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status_code: int | None = None,
        response: Any = None,
        retryable: bool = False,
        retry_after: float | None = None,
        code: str | int | None = None,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message
        self.status_code = status_code
        self.response = response
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code


class ProviderUnavailable(ProviderError):
    """The provider's circuit breaker is open: the call was refused without reaching it.

    ``retry_after`` is the number of seconds until the breaker lets a trial call through.
    """

    def __init__(self, provider: str, *, retry_after: float = 0.0) -> None:
        super().__init__(provider, "circuit open", retryable=True, retry_after=retry_after)
        self.retry_after: float = retry_after


class NoVenueAvailable(ApplicationError):
    code = "no_venue_available"
    status_code = 503
    default_message = "No venue can serve this pair right now."


class InvalidRoutingRule(ApplicationError):
    code = "invalid_routing_rule"
    status_code = 400
    default_message = "The routing rule is not valid."


class RoutingRuleNotFound(NotFoundError):
    default_message = "No such routing rule."


class UnknownProvider(NotFoundError):
    code = "unknown_provider"
    default_message = "No such provider."


class InvalidProviderConfig(ApplicationError):
    code = "invalid_provider_config"
    status_code = 400
    default_message = "The configuration has options this provider does not take."


class ConfigVersionNotFound(NotFoundError):
    default_message = "No such configuration version."


class ProviderNotConfigured(ProviderError):
    """The provider is unknown, switched off, or lacks a required option."""
