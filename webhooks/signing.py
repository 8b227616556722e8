"""Standard Webhooks signing: secrets, the signature header, and what a receiver verifies.

Signed content is ``{webhook_id}.{timestamp}.{body}`` (the exact bytes sent), HMAC-SHA256
keyed with the base64-decoded part of the ``whsec_`` secret, base64 encoded, as ``v1,<sig>``;
several signatures (a rotation's overlap) are space-separated. The official
``standardwebhooks`` package does the signing, so what we send is what its verifiers accept.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def secret_new() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_header(
    *, secrets_in_use: Iterable[str], webhook_id: str, timestamp: datetime, body: str
) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, newest first."""
    return " ".join(Webhook(secret).sign(webhook_id, timestamp, body) for secret in secrets_in_use)


def delivery_headers(
    *, secrets_in_use: Iterable[str], webhook_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    """Every header of a delivery but the transport's own."""
    signature = signature_header(
        secrets_in_use=secrets_in_use, webhook_id=webhook_id, timestamp=timestamp, body=body
    )
    return {
        "content-type": "application/json",
        "user-agent": "MarqetFi-Webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
        "x-webhook-signature": signature,
    }
