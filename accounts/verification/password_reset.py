"""Password reset keys: ``<user id>-<token>``, the token from Django's signed, timed generator.

The key is allauth's format (``user_pk_to_url_str`` + ``-`` + token), its generator set as
``ACCOUNT_PASSWORD_RESET_TOKEN_GENERATOR`` so allauth and this module agree. A key expires
after ``PASSWORD_RESET_TIMEOUT`` seconds and is single-use: the token hashes the user's
password hash, which the reset changes (a new salt, even for the same password).
"""

from __future__ import annotations

from typing import Any

from allauth.account.utils import url_str_to_user_pk, user_pk_to_url_str
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.exceptions import ValidationError

from accounts.models import User


class PasswordResetKeyGenerator(PasswordResetTokenGenerator):
    """Django's generator without ``last_login`` in the hash: signing in elsewhere must not void
    a reset link, or whoever squats an account could keep its owner from recovering it by
    signing in every few seconds. The email is in the hash: a key mailed to an address stops
    working once the account's address changes."""

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        return f"{user.pk}{user.password}{timestamp}{user.email or ''}"


password_reset_keys = PasswordResetKeyGenerator()


def password_reset_key_make(*, user: User) -> str:
    return f"{user_pk_to_url_str(user)}-{password_reset_keys.make_token(user)}"


def password_reset_key_user(*, key: str) -> User | None:
    """The user a reset key is valid for now, or None (malformed, forged, expired or used)."""
    uid, separator, token = key.partition("-")
    if not separator or not token:
        return None
    try:
        user = User.objects.filter(pk=url_str_to_user_pk(uid)).first()
    except (ValidationError, ValueError):
        return None
    if user is None or not password_reset_keys.check_token(user, token):
        return None
    return user
