"""Secrets at rest: Fernet with key rotation (``FIELD_ENCRYPTION_KEYS``, newest first).

New values are encrypted with the first key; any listed key decrypts, so a key is rotated
by putting the new one first, re-saving rows (``rotate``), then dropping the old one.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from marqetfi.core.errors import DecryptionError


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("no configured FIELD_ENCRYPTION_KEYS key decrypts this value") from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored value under the newest key."""
    return _current().rotate(token.encode()).decode()
