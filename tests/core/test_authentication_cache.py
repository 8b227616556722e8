"""The signed-in user comes from the process's cache, and a change to the user counts from the
very next request: in this process at once, in the others after the commit (the ``users``
generation, read from Redis on every request)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from accounts.services.users import user_sign_in_set
from conftest import bearer_client
from marqetfi.core.authentication import user_cached, users_generation
from marqetfi.core.runtime import Generation, GenerationCache
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = "/api/v1/me"


def _user_reads(queries: CaptureQueriesContext) -> list[str]:
    table = User._meta.db_table
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"]
    ]


def test_a_second_request_reads_no_user_row() -> None:
    user = UserFactory()
    client = bearer_client(user)
    assert client.get(ACCOUNT).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get(ACCOUNT)
    assert response.status_code == 200
    assert response.json()["email"] == user.email
    assert _user_reads(queries) == []


def test_deactivation_counts_from_the_next_request() -> None:
    user: Any = UserFactory()
    client = bearer_client(user)
    assert client.get(ACCOUNT).status_code == 200

    user_sign_in_set(user=user, enabled=False)

    response = client.get(ACCOUNT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"user_inactive", "authentication_failed", "not_authenticated"}


def test_a_change_made_by_another_process_counts_once_it_bumps_the_generation(redis_conn: Any) -> None:
    """Another process's save commits, then bumps the generation in Redis; this process has not
    seen the save (no signal here), only the bump."""
    user = UserFactory()
    client = bearer_client(user)
    assert client.get(ACCOUNT).status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)  # the other process's row, no signal here
    assert client.get(ACCOUNT).status_code == 200, "cached until the generation moves"

    redis_conn.incr(users_generation.key)

    assert client.get(ACCOUNT).status_code == 401


def test_a_deleted_user_is_refused() -> None:
    user = UserFactory()
    client = bearer_client(user)
    assert client.get(ACCOUNT).status_code == 200
    user.delete()
    assert client.get(ACCOUNT).status_code == 401


def test_each_request_gets_its_own_user_instance() -> None:
    """A view that changes ``request.user`` in memory changes nothing another request sees."""
    user = UserFactory()
    first = user_cached(user.pk)
    first.email = "changed-in-memory@marqetfi.local"
    assert user_cached(user.pk).email == user.email
    assert user_cached(user.pk) is not user_cached(user.pk)


def _redis_unreachable() -> Any:
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = "redis://127.0.0.1:1/0"
    return override_settings(CACHES=caches)


def test_without_redis_a_generation_cache_answers_from_the_database_and_keeps_nothing() -> None:
    cache: GenerationCache[str, int] = GenerationCache(Generation("redis-down-test", check_interval=0))
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return len(loads)

    assert cache.get("key", load) == 1  # Redis up: loaded once, then kept
    assert cache.get("key", load) == 1
    with _redis_unreachable():
        assert cache.get("key", load) == 2
        assert cache.get("key", load) == 3, "nothing kept while changes elsewhere cannot be seen"
    assert cache.get("key", load) == 4, "what was held before the outage is not trusted after it"
    assert cache.get("key", load) == 4


def test_without_redis_the_user_is_read_from_the_database() -> None:
    user = UserFactory()
    assert user_cached(user.pk).email == user.email
    User.objects.filter(pk=user.pk).update(email="changed-while-redis-was-down@marqetfi.local")
    with _redis_unreachable(), CaptureQueriesContext(connection) as queries:
        assert user_cached(user.pk).email == "changed-while-redis-was-down@marqetfi.local"
    assert len(_user_reads(queries)) == 1


PRODUCT_PACKAGES = (
    "accounts",
    "backoffice",
    "demo",
    "deposits",
    "ledger",
    "marqetfi",
    "pricing",
    "providers",
    "streams",
    "trading",
    "webhooks",
)


def test_product_code_never_updates_users_without_a_signal() -> None:
    """``QuerySet.update`` on users would leave every process's cached copy as it was."""
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"(User|get_user_model\(\))\.objects\b[^\n]*\.update\(")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for package in PRODUCT_PACKAGES
        for path in (root / package).rglob("*.py")
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
