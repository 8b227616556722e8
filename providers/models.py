from __future__ import annotations

from django.db import models

from marqetfi.core.models import TimeStampedModel


class LocalWalletKey(TimeStampedModel):
    """A key of the ``local`` wallet signer (development and demo): encrypted at rest, never served.

    ``idempotency_key`` makes creation safe to retry: the same key returns the same wallet.
    """

    idempotency_key = models.CharField(max_length=200, unique=True)
    address = models.CharField(max_length=42, unique=True)
    encrypted_private_key = models.TextField(help_text="Fernet token under FIELD_ENCRYPTION_KEYS")

    def __str__(self) -> str:
        return self.address
