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
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication as _JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from marqetfi.core.logging import bind_user
from marqetfi.core.runtime import Generation, GenerationCache

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


class JWTAuthentication(_JWTAuthentication):
    """simplejwt's bearer authentication, reading the user through ``user_cached`` and tagging
    the request's log lines with the user. Its checks are simplejwt's own, in its order."""

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
        return user
