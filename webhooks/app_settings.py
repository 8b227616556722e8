"""Webhooks' runtime settings: the retry policy of deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marqetfi.core.app_settings.definitions import AppSettingDefinition, int_between, record


@dataclass(frozen=True)
class WebhookRetryPolicy:
    """Exponential backoff for failed deliveries: base * 2**attempt, capped at max_delay."""

    max_retries: int
    base_delay_seconds: int
    max_delay_seconds: int
    timeout_seconds: int

    def delay_seconds(self, attempt: int) -> int:
        """The wait before retry number ``attempt`` (1 for the first retry)."""
        return min(self.base_delay_seconds * 2 ** max(attempt - 1, 0), self.max_delay_seconds)


def _delays_ordered(value: dict[str, Any]) -> dict[str, list[str]]:
    if value["max_delay_seconds"] < value["base_delay_seconds"]:
        return {"max_delay_seconds": ["Must not be below base_delay_seconds."]}
    return {}


WEBHOOK_RETRY_POLICY: AppSettingDefinition[WebhookRetryPolicy] = AppSettingDefinition(
    key="webhook_retry_policy",
    description="Retries of a failed webhook delivery, their backoff and the timeout of one attempt.",
    default=lambda: {
        "max_retries": 3,
        "base_delay_seconds": 30,
        "max_delay_seconds": 3600,
        "timeout_seconds": 10,
    },
    validate=record(
        {
            "max_retries": int_between(0, 20),
            "base_delay_seconds": int_between(1, 3600),
            "max_delay_seconds": int_between(1, 86_400),
            "timeout_seconds": int_between(1, 60),
        },
        check=_delays_ordered,
    ),
    build=lambda value: WebhookRetryPolicy(**value),
    merge=True,
)

APP_SETTINGS = (WEBHOOK_RETRY_POLICY,)
