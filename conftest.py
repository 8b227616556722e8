"""Project fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from tests.accounts.factories import UserFactory

pytest_plugins = ["tests.chain.fixtures", "tests.log_scan"]


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db: None) -> Any:
    return UserFactory()


def bearer_client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def auth_client(user: Any) -> APIClient:
    return bearer_client(user)


@pytest.fixture
def redis_conn() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection("default")


class StreamListener:
    """A Redis subscriber to stream channels (``prices:BTCUSD``, ``user:<id>``), as a web process's hub."""

    def __init__(self) -> None:
        from django_redis import get_redis_connection

        self._pubsub = get_redis_connection("default").pubsub(ignore_subscribe_messages=True)

    def subscribe(self, *channels: str) -> None:
        from marqetfi.core.stream_hub import stream_channel_key

        self._pubsub.subscribe(*(stream_channel_key(channel) for channel in channels))
        for _ in channels:  # the confirmations, so nothing published afterwards is missed
            self._pubsub.get_message(ignore_subscribe_messages=False, timeout=2)

    def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        import json
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message is not None and message["type"] == "message":
                return dict(json.loads(message["data"]))
        raise TimeoutError("no stream message")

    def close(self) -> None:
        self._pubsub.close()


@pytest.fixture
def stream_listener() -> Iterator[StreamListener]:
    listener = StreamListener()
    yield listener
    listener.close()


@pytest.fixture(autouse=True)
def _forget_app_settings() -> Iterator[None]:
    """A test's setting rows roll back without moving the generation: drop this process's copy."""
    from marqetfi.core.app_settings.cache import app_settings_cache

    yield
    app_settings_cache.clear()


@pytest.fixture(autouse=True)
def _forget_catalogue() -> Iterator[None]:
    """A test's routing rules, listings, risk limits and users roll back (or are flushed)
    without moving their generations: drop this process's copies."""
    from marqetfi.core.authentication import users_cache_clear
    from pricing.selectors import pair_listings_cache_clear
    from providers.services.routing import routing_cache_clear
    from trading.services.risk import risk_limits_cache_clear

    routing_cache_clear()
    pair_listings_cache_clear()
    risk_limits_cache_clear()
    users_cache_clear()
    yield
    routing_cache_clear()
    pair_listings_cache_clear()
    risk_limits_cache_clear()
    users_cache_clear()


@pytest.fixture(autouse=True)
def _clear_throttle_counters() -> Iterator[None]:
    """Throttle history lives in Redis and would otherwise leak from one test to the next."""
    from marqetfi.core.throttling import throttle_counters_clear

    throttle_counters_clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """A channel layer per test: channels_redis keeps asyncio locks bound to the event loop that
    first waited on them, and each async test runs in a loop of its own."""
    yield
    from channels.layers import channel_layers

    channel_layers.backends.clear()


requires_postgres = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="needs PostgreSQL row locks and concurrent transactions (set DATABASE_URL)",
)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"
