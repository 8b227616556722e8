"""The event types a webhook endpoint may subscribe to (API.md, "Webhooks")."""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = (
    "order.created",
    "order.filled",
    "order.cancelled",
    "order.rejected",
    # An order the venue did not answer in time: status "unknown" until a reconciler has asked it.
    "order.updated",
    "trade.executed",
    "position.opened",
    "position.updated",
    "position.closed",
    "deposit.received",
    "deposit.confirmed",
    "swap.started",
    "swap.completed",
    "swap.failed",
    "deposit.completed",
    # A deposit that ends without a credit: reorganised away, reverted, or closed by an operator.
    "deposit.failed",
    "account.wallet_linked",
    "account.auth_method_linked",
    "risk.margin_call",
    "risk.liquidation",
    "webhook.test",
    # Sent to an endpoint's other endpoints (or itself, last) when it is disabled for failing.
    "account.webhook_disabled",
)
