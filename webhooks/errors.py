"""Webhooks' domain errors."""

from __future__ import annotations

from marqetfi.core.errors import ConflictError


class WebhookEndpointDisabled(ConflictError):
    code = "webhook_endpoint_disabled"
    default_message = "The webhook endpoint is disabled; enable it before sending to it."
