"""Our JWTs: minting, rotation and revocation.

Every token carries the user's ``token_version`` (``marqetfi.core.authentication``): raising
the version (``tokens_revoke_all``) refuses every access and refresh token minted before.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import update_last_login
from django.db import transaction
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.errors import AccountDisabled, InvalidRefreshToken, TokenRevoked
from accounts.models import User
from marqetfi.core.authentication import (
    TOKEN_VERSION_CLAIM,
    access_token_deny,
    token_version,
)

logger = logging.getLogger(__name__)


def tokens_issue(*, user: User) -> dict[str, str]:
    """A fresh access + refresh pair; the refresh token is recorded so it can be revoked."""
    refresh = RefreshToken.for_user(user)
    refresh[TOKEN_VERSION_CLAIM] = user.token_version  # the access token copies it
    update_last_login(User, user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _refresh_token(raw: str) -> RefreshToken:
    try:
        return RefreshToken(raw)  # type: ignore[arg-type]  # the stubs say Token; it takes text
    except TokenError as exc:
        raise InvalidRefreshToken() from exc


@transaction.atomic
def tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate: the refresh token sent is blacklisted, a new one and an access token returned.
    Refused when the token is invalid, expired or used, when its version is older than the
    user's (signed out everywhere) or when the user cannot sign in."""
    token = _refresh_token(refresh)
    user = User.objects.filter(pk=token.get(api_settings.USER_ID_CLAIM)).first()
    if user is None:
        raise InvalidRefreshToken()
    if not user.is_active:
        raise AccountDisabled()
    if token_version(token) < user.token_version:
        raise TokenRevoked()
    token.blacklist()
    token.set_jti()
    token.set_exp()
    token.set_iat()
    token.outstand()
    return {"access": str(token.access_token), "refresh": str(token)}


def token_blacklist(*, refresh: str, access: str | None = None) -> None:
    """Log out one session: its refresh token can never be used again and, when the access
    token presented with it belongs to the same user, that access token is refused from now
    on too (until it expires; see ``access_token_deny`` for what happens while Redis is down)."""
    token = _refresh_token(refresh)
    token.blacklist()
    if not access:
        return
    try:
        access_token = AccessToken(access)  # type: ignore[arg-type]
    except TokenError:
        return  # expired or not ours: nothing left to refuse
    if access_token.get(api_settings.USER_ID_CLAIM) != token.get(api_settings.USER_ID_CLAIM):
        return
    try:
        access_token_deny(access_token)
    except RedisError:
        logger.warning("Could not deny a logged-out access token; it passes until it expires")


@transaction.atomic
def tokens_revoke_all(*, user: User) -> int:
    """Sign the user out everywhere (sign-in disabled, password changed or reset): the token
    version moves on, so every access and refresh token minted before is refused from the next
    request in every process, and every outstanding refresh token is blacklisted as well.
    Returns how many refresh tokens were blacklisted."""
    current = User.objects.select_for_update().values_list("token_version", flat=True).get(pk=user.pk)
    user.token_version = current + 1
    user.save(update_fields=["token_version", "updated_at"])
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    tokens = list(outstanding)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=t) for t in tokens], ignore_conflicts=True)
    return len(tokens)
