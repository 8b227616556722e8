"""Bearer authentication, with the signed-in user read from a per-process cache.

simplejwt reads the token's user from the database on every request: one query, and the
ORM's CPU to build and compile it, for a row that changes only when the user signs in, is
edited, deactivated or deleted. Each process keeps the users' rows instead, until the
``users`` generation moves: it is bumped after every save or delete of a user (``post_save``
/ ``post_delete``, connected in ``CoreConfig.ready``), and read from Redis on every request
(``check_interval`` 0: one GET), so a deactivation, a staff flag taken away or a trading
switch turned off counts from the next request in every process, as it did with the query.
A change made with ``QuerySet.update`` sends no signal: product code never updates users that
way (a test in tests/core/test_authentication_cache.py keeps it so).

If Redis cannot be read, the user is read from the database, as without the cache
(``GenerationCache``).

Revocation. Every token carries the user's ``token_version`` (claim ``ver``; a token without
it counts as version 0) and is refused (``token_revoked``) once the user's version is higher:
raising it signs the user out everywhere, at the cost of no query (the version is a column of
the cached user row). Logging out one session denies that session's access token by its
``jti`` in Redis until the token expires. That denylist fails open: while Redis cannot be
read a logged-out access token keeps working until it expires (``ACCESS_TOKEN_LIFETIME``,
10 minutes by default), whereas failing closed would sign every user out for the outage;
the refresh token is blacklisted in the database either way.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from marqetfi.core.logging import bind_user
from marqetfi.core.runtime import Generation, GenerationCache

logger = logging.getLogger(__name__)

TOKEN_VERSION_CLAIM: Final = "ver"  # noqa: S105  # a claim name
# The user model's field the claim is compared with (``accounts.User.token_version``).
TOKEN_VERSION_FIELD: Final = "token_version"  # noqa: S105  # a field name
DENIED_ACCESS_KEY_PREFIX: Final = "marqetfi:jwt:denied:"

users_generation = Generation("users", check_interval=0.0)
# A user's row as its fields' values, in ``concrete_fields`` order; at most this many users
# per process (then the cache starts again empty).
USERS_CACHED_AT_MOST = 20_000
_user_rows: GenerationCache[str, tuple[Any, ...]] = GenerationCache(
    users_generation, max_entries=USERS_CACHED_AT_MOST
)


def user_cached(user_id: Any) -> Any:
    """The user with primary key ``user_id``, a new instance on each call (callers may change
    it); ``DoesNotExist`` if there is none."""
    model = get_user_model()
    attnames = [field.attname for field in model._meta.concrete_fields]

    def load() -> tuple[Any, ...]:
        return tuple(model.objects.values_list(*attnames).get(pk=user_id))

    return model.from_db(DEFAULT_DB_ALIAS, attnames, _user_rows.get(str(user_id), load))


def users_cache_clear() -> None:
    """Forget this process's users (tests, whose rows roll back without moving the generation)."""
    _user_rows.clear()


def users_changed(sender: Any, instance: Model, **kwargs: Any) -> None:
    """``post_save`` / ``post_delete`` receiver for the user model: every process forgets the
    users it cached, this one at once, the others after the commit."""
    users_generation.bump(robust=True)


def users_connect_signals() -> None:
    """Connect ``users_changed``; call once from an ``AppConfig.ready()``."""
    user_model = settings.AUTH_USER_MODEL
    post_save.connect(users_changed, sender=user_model, dispatch_uid="core.users_changed.save")
    post_delete.connect(users_changed, sender=user_model, dispatch_uid="core.users_changed.delete")


def token_version(token: Token) -> int:
    """The user version a token was minted at (0 for a token minted before versions)."""
    value = token.get(TOKEN_VERSION_CLAIM, 0)
    return value if isinstance(value, int) else 0


def user_token_version(user: Any) -> int:
    return int(getattr(user, TOKEN_VERSION_FIELD, 0) or 0)


def access_token_deny(token: Token) -> None:
    """Refuse this access token from now until it expires, in every process (logout).
    Raises ``RedisError`` when Redis cannot be written."""
    jti = token.get(api_settings.JTI_CLAIM)
    exp = token.get("exp")
    if not isinstance(jti, str) or not isinstance(exp, int | float):
        return
    # Until the token stops being accepted: its expiry plus the leeway tokens are allowed.
    remaining = int(exp - time.time()) + 1 + int(settings.SIMPLE_JWT.get("LEEWAY", 0))
    if remaining > 0:
        get_redis_connection("default").set(f"{DENIED_ACCESS_KEY_PREFIX}{jti}", 1, ex=remaining)


def access_token_denied(token: Token) -> bool:
    """Whether ``access_token_deny`` refused this token; False while Redis cannot be read
    (fails open, see the module's docstring)."""
    jti = token.get(api_settings.JTI_CLAIM)
    if not isinstance(jti, str):
        return False
    try:
        return bool(get_redis_connection("default").exists(f"{DENIED_ACCESS_KEY_PREFIX}{jti}"))
    except RedisError:
        logger.warning("Access token denylist unreadable; logged-out access tokens pass until they expire")
        return False


class JWTAuthentication(_JWTAuthentication):
    """simplejwt's bearer authentication, reading the user through ``user_cached`` and tagging
    the request's log lines with the user. Its checks are simplejwt's own, in its order, then
    revocation (``token_revoked``: an older token version, or an access token logged out)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is not None:
            bind_user(result[0].pk)
        return result

    def get_user(self, validated_token: Token) -> Any:
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        try:
            user = user_cached(user_id)
        except self.user_model.DoesNotExist as exc:
            raise AuthenticationFailed("User not found", code="user_not_found") from exc
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed("The user's password has been changed.", code="password_changed")
        if token_version(validated_token) < user_token_version(user) or access_token_denied(validated_token):
            raise AuthenticationFailed("This token has been revoked; sign in again.", code="token_revoked")
        return user
