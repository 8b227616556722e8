"""Signatures a Standard Webhooks receiver accepts, checked with the official package and by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from webhooks.signing import delivery_headers, secret_new


def hand_signature(secret: str, webhook_id: str, timestamp: str, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_a_delivery_verifies_with_the_official_package_and_by_hand() -> None:
    secret = secret_new()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = '{"id":"evt_1","type":"order.filled","seq":7,"created_at":"2026-12-05T00:00:00Z","data":{}}'
    now = datetime.now(UTC)
    headers = delivery_headers(secrets_in_use=[secret], webhook_id="evt_1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers)["seq"] == 7
    assert headers["webhook-signature"] == hand_signature(secret, "evt_1", headers["webhook-timestamp"], body)
    assert headers["x-webhook-signature"] == headers["webhook-signature"]


def test_during_a_rotation_either_secret_verifies_and_a_stranger_does_not() -> None:
    new, old, stranger = secret_new(), secret_new(), secret_new()
    body = '{"id":"evt_2"}'
    headers = delivery_headers(
        secrets_in_use=[new, old], webhook_id="evt_2", timestamp=datetime.now(UTC), body=body
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + " ", headers)  # a body changed in transit
