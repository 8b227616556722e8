from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from marqetfi.core import crypto


def test_round_trip_and_tokens_differ_from_the_plaintext():
    token = crypto.encrypt("0xprivatekey")
    assert "0xprivatekey" not in token
    assert crypto.decrypt(token) == "0xprivatekey"
    assert crypto.encrypt("0xprivatekey") != token, "each encryption is salted"


def test_rotation_keeps_old_values_readable_then_moves_them_to_the_new_key():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        token = crypto.encrypt("api-secret")
    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        assert crypto.decrypt(token) == "api-secret"
        rotated = crypto.rotate(token)
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert crypto.decrypt(rotated) == "api-secret"
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(token)
