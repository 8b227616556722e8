"""Refusals of webhook requests, each with a stable code (API.md error shape)."""

from __future__ import annotations

from marqetfi.core.errors import ApplicationError, ConflictError, NotFoundError


class WebhookUrlRefused(ApplicationError):
    """The URL may not receive webhooks; the code is the SSRF guard's (``forbidden_address``,
    ``https_required``, ``invalid_url``, ``unresolvable_host``)."""

    code = "webhook_url_refused"
    default_message = "This URL may not receive webhooks."

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, details={"url": [message]})
        self.code = code


class UnknownEventType(ApplicationError):
    code = "unknown_event_type"
    default_message = "An event type is not one webhooks send."


class WebhookEndpointLimitReached(ConflictError):
    code = "webhook_endpoint_limit_reached"
    default_message = "The account already has the maximum number of webhook endpoints."


class WebhookEndpointDisabledByOperator(ConflictError):
    code = "webhook_endpoint_disabled_by_operator"
    default_message = "An operator disabled this endpoint; only an operator can enable it again."


class WebhookEndpointDisabled(ConflictError):
    code = "webhook_endpoint_disabled"
    default_message = "The webhook endpoint is disabled; enable it before sending to it."


class WebhookEndpointNotFound(NotFoundError):
    code = "webhook_endpoint_not_found"
    default_message = "No such webhook endpoint."


class WebhookDeliveryNotFound(NotFoundError):
    code = "webhook_delivery_not_found"
    default_message = "No such webhook delivery."


class WebhookRecoveryNotFound(NotFoundError):
    code = "webhook_recovery_not_found"
    default_message = "No such webhook recovery."
