from __future__ import annotations

from django.contrib.auth.models import update_last_login
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.errors import InvalidRefreshToken
from accounts.models import User


def tokens_issue(*, user: User) -> dict[str, str]:
    """A fresh access + refresh pair; the refresh token is recorded so it can be revoked."""
    refresh = RefreshToken.for_user(user)
    update_last_login(User, user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def token_blacklist(*, refresh: str) -> None:
    """Log out: the refresh token can never be used again."""
    try:
        RefreshToken(refresh).blacklist()  # type: ignore[arg-type]
    except TokenError as exc:
        raise InvalidRefreshToken() from exc


def tokens_revoke_all(*, user: User) -> int:
    """Blacklist every outstanding refresh token of the user (sign-in disabled, password changed)."""
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    tokens = list(outstanding)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in tokens], ignore_conflicts=True)
    return len(tokens)
