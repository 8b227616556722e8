"""The areas of the API, as OpenAPI tags, and which paths belong to each.

No Django or DRF import here: the settings read ``TAGS`` (SPECTACULAR_SETTINGS["TAGS"]).
"""

from __future__ import annotations

from typing import Final

API_PREFIX: Final = "/api/v1/"

# The areas of the API in the order the docs list them, each with its description
# (SPECTACULAR_SETTINGS["TAGS"]). Every operation carries exactly one of these names.
TAGS: Final = (
    ("auth", "Sign-in: email and password, OAuth id tokens, SIWE, token refresh, logout and password reset."),
    (
        "account",
        "The signed-in user: profile, linked sign-in methods, wallets, USDC balances (GET /account).",
    ),
    ("market data", "Tradable pairs and prices, one symbol or many."),
    ("trading", "Orders, previews, positions and their protection, fills and analytics."),
    ("deposits", "Deposit addresses, reported deposits and their swap progress."),
    (
        "webhooks",
        "Webhook endpoints, deliveries, redelivery and recovery. The events sent are listed "
        "under the schema's webhooks.",
    ),
    (
        "streams",
        "The user's event stream over REST (GET /events). The WebSocket protocol is the AsyncAPI "
        "document at /api/asyncapi.yaml.",
    ),
    (
        "admin",
        "Staff only, under /api/v1/admin/: configs, providers, routing, risk, users; and the health probe.",
    ),
)
TAG_NAMES: Final = tuple(name for name, _ in TAGS)

# Path (after /api/v1/) -> tag; the longest matching prefix wins. A prefix ending in "/" matches
# only below it; one without matches the path itself and anything below it.
PATH_TAGS: Final = {
    "admin/": "admin",
    "health": "admin",
    "auth/": "auth",
    "me": "account",
    "wallets": "account",
    "pairs": "market data",
    "prices": "market data",
    "account": "account",
    "orders": "trading",
    "positions": "trading",
    "trades": "trading",
    "analytics": "trading",
    "deposits": "deposits",
    "webhooks/": "webhooks",
    "events": "streams",
}


def path_tag(path: str) -> str | None:
    """The tag of an API path (``/api/v1/orders/{order_id}`` -> ``trading``); None if unmapped."""
    if not path.startswith(API_PREFIX):
        return None
    rest = path[len(API_PREFIX) :]
    matches = [
        prefix
        for prefix in PATH_TAGS
        if rest.startswith(prefix) and (prefix.endswith("/") or rest[len(prefix) :][:1] in ("", "/"))
    ]
    return PATH_TAGS[max(matches, key=len)] if matches else None
