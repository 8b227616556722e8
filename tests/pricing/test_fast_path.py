"""The cached-price route in front of Django: answers hits itself, hands everything else over.

The route runs in front of Django's real ASGI handler, as in ``marqetfi.asgi``; requests go
through httpx's ASGI transport. ``Through`` counts what reaches Django, so each test shows
who answered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.test import override_settings
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from marqetfi.core.app_settings.services import app_setting_set
from marqetfi.core.throttling import RateWindow, windows_consume
from pricing.apis import PriceDetailApi, PriceListApi
from pricing.fast_path import CachedPriceRoute
from pricing.metrics import PRICE_FAST_PATH_ANSWERS
from pricing.models import TradingPair
from pricing.services.pairs import pairs_sync
from pricing.services.prices import price_tick_ingest
from providers.base import MarketCategory
from tests.accounts.factories import UserFactory
from tests.pricing.venues import market

pytestmark = pytest.mark.django_db(transaction=True)


class Through:
    """Django's ASGI handler, counting the requests that reach it."""

    def __init__(self) -> None:
        self.django = ASGIHandler()
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await self.django(scope, receive, send)


@pytest.fixture
def django_app() -> Through:
    return Through()


@pytest.fixture
def client(django_app: Through) -> Iterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cast(Any, CachedPriceRoute(django_app)), client=("203.0.113.7", 5000))
    yield httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def cached(venues: Any) -> Any:
    """BTCUSD and ETHUSD on alpha, EURUSD on beta; BTCUSD and EURUSD have a cached tick."""
    venues["alpha"].markets = [market("BTCUSD"), market("ETHUSD")]
    venues["beta"].markets = [market("EURUSD", MarketCategory.FOREX)]
    pairs_sync(provider="alpha")
    pairs_sync(provider="beta")
    venues["alpha"].quote("ETHUSD", "3000", "3001")
    venues["alpha"].quote("BTCUSD", "64000.5", "64001.5")
    now = timezone.now()
    price_tick_ingest(
        symbol="BTCUSD", bid=Decimal("64000.5"), ask=Decimal("64001.5"), provider="alpha", ts=now
    )
    price_tick_ingest(symbol="EURUSD", bid=Decimal("1.085"), ask=Decimal("1.0852"), provider="beta", ts=now)
    return venues


def rates(**scopes: str) -> dict[str, Any]:
    return {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1000/min", "user": "1000/min", **scopes},
    }


async def test_a_cached_price_is_answered_without_django_or_the_venue(client, django_app, cached):
    answered_before = PRICE_FAST_PATH_ANSWERS._value.get()

    response = await client.get("/api/v1/prices/btcusd", headers={"X-Request-ID": "phone-42"})

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("symbol", "bid", "ask", "mid", "provider", "stale", "market")} == {
        "symbol": "BTCUSD",
        "bid": "64000.5",
        "ask": "64001.5",
        "mid": "64001",
        "provider": "alpha",
        "stale": False,
        "market": "open",
    }
    assert body["ts"].endswith("Z") and 0 <= body["age_ms"] < 5000
    assert response.headers["X-Request-ID"] == "phone-42"
    assert response.headers["content-type"] == "application/json"
    assert django_app.paths == []
    assert cached["alpha"].price_calls == []
    assert PRICE_FAST_PATH_ANSWERS._value.get() == answered_before + 1


async def test_the_route_and_django_write_the_same_body(client, django_app, cached):
    fast = (await client.get("/api/v1/prices/EURUSD")).json()
    # An Origin sends the same read through Django (CORS is Django's business).
    slow = (await client.get("/api/v1/prices/EURUSD", headers={"Origin": "http://localhost:3000"})).json()

    assert django_app.paths == ["/api/v1/prices/EURUSD"]
    assert set(fast) == set(slow)
    assert {k: v for k, v in fast.items() if k != "age_ms"} == {
        k: v for k, v in slow.items() if k != "age_ms"
    }


async def test_a_miss_goes_to_django_which_fetches_once_then_the_route_answers(client, django_app, cached):
    first = await client.get("/api/v1/prices/ETHUSD")
    second = await client.get("/api/v1/prices/ETHUSD")

    assert first.status_code == second.status_code == 200
    assert first.json()["bid"] == second.json()["bid"] == "3000"
    assert django_app.paths == ["/api/v1/prices/ETHUSD"]
    assert cached["alpha"].price_calls == [["ETHUSD"]]


async def test_bulk_reads_of_cached_prices_keep_the_order_asked(client, django_app, cached):
    response = await client.get("/api/v1/prices", params={"symbols": "eurusd, BTCUSD"})

    assert response.status_code == 200
    body = response.json()
    assert [price["symbol"] for price in body["prices"]] == ["EURUSD", "BTCUSD"]
    assert body["errors"] == {}
    assert django_app.paths == []


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/prices/NOPEUSD", {}, 404),  # unknown symbol: Django's error
        ("/api/v1/prices/BTCUSD", {"max_age_ms": "0"}, 200),  # a refetch is Django's
        ("/api/v1/prices", {"symbols": "BTCUSD,NOPEUSD"}, 200),  # per-symbol errors are Django's
        ("/api/v1/prices", {"symbols": "BTCUSD", "extra": "1"}, 200),
    ],
)
async def test_anything_but_a_plain_hit_goes_to_django(client, django_app, cached, path, params, status):
    response = await client.get(path, params=params)

    assert response.status_code == status
    assert django_app.paths == [path]


async def test_bulk_with_an_unknown_symbol_gets_djangos_per_symbol_errors(client, cached):
    body = (await client.get("/api/v1/prices", params={"symbols": "BTCUSD,NOPEUSD"})).json()

    assert [price["symbol"] for price in body["prices"]] == ["BTCUSD"]
    assert body["errors"]["NOPEUSD"]["code"] == "unknown_symbol"


async def test_route_and_django_share_one_rate_limit(client, django_app, cached):
    with override_settings(REST_FRAMEWORK=rates(anon="3/min")):
        statuses = [(await client.get("/api/v1/prices/BTCUSD")).status_code for _ in range(2)]
        statuses.append(
            (await client.get("/api/v1/prices/BTCUSD", params={"max_age_ms": "60000"})).status_code
        )
        limited = await client.get("/api/v1/prices/BTCUSD")

    assert statuses == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "throttled"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Django saw the refetch and the limited request; the route answered the other two.
    assert django_app.paths == ["/api/v1/prices/BTCUSD", "/api/v1/prices/BTCUSD"]


async def test_a_signed_in_trader_is_counted_as_that_user(client, django_app, cached, redis_conn):
    user: Any = await sync_to_async(UserFactory)()
    token = str((await sync_to_async(RefreshToken.for_user)(user)).access_token)

    with override_settings(REST_FRAMEWORK=rates(user="1/min")):
        first = await client.get("/api/v1/prices/BTCUSD", headers={"Authorization": f"Bearer {token}"})
        second = await client.get("/api/v1/prices/BTCUSD", headers={"Authorization": f"Bearer {token}"})

    assert first.status_code == 200
    assert second.status_code == 429
    assert django_app.paths == ["/api/v1/prices/BTCUSD"]
    assert any(str(user.pk) in key.decode() for key in redis_conn.keys("marqetfi:throttle:throttle_user_*"))


async def test_a_redis_that_lost_the_script_still_answers_here(client, django_app, cached, redis_conn):
    redis_conn.script_flush()  # a restarted or flushed Redis

    responses = [await client.get("/api/v1/prices/BTCUSD") for _ in range(2)]

    assert [response.status_code for response in responses] == [200, 200]
    assert django_app.paths == []


async def test_a_bad_token_is_refused_by_django(client, django_app, cached):
    response = await client.get("/api/v1/prices/BTCUSD", headers={"Authorization": "Bearer not-a-jwt"})

    assert response.status_code == 401
    assert response.json()["error"]["code"]
    assert django_app.paths == ["/api/v1/prices/BTCUSD"]


async def test_maintenance_mode_closes_the_route_too(client, django_app, cached):
    staff = await sync_to_async(UserFactory)(is_staff=True, is_superuser=True)
    await sync_to_async(app_setting_set)(key="maintenance_mode", value={"enabled": True}, actor=staff)

    response = await CachedPriceRouteClient.fresh(django_app).get("/api/v1/prices/BTCUSD")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "maintenance"
    assert django_app.paths == ["/api/v1/prices/BTCUSD"]


async def test_a_pair_switched_off_is_no_longer_answered_after_the_reload(client, django_app, cached):
    assert (await client.get("/api/v1/prices/BTCUSD")).status_code == 200
    await sync_to_async(TradingPair.objects.filter(symbol="BTCUSD").update)(active=False)

    response = await CachedPriceRouteClient.fresh(django_app).get("/api/v1/prices/BTCUSD")

    assert response.status_code == 404
    assert django_app.paths == ["/api/v1/prices/BTCUSD"]


def test_price_views_use_the_default_throttles_the_route_mirrors():
    defaults = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]
    for view in (PriceDetailApi, PriceListApi):
        assert [f"{cls.__module__}.{cls.__name__}" for cls in view.throttle_classes] == defaults


def test_concurrent_requests_never_pass_a_limit():
    window = RateWindow("throttle_test_burst", limit=5, seconds=60)
    barrier = threading.Barrier(20)

    def attempt(_: int) -> bool:
        barrier.wait()
        return windows_consume([window]).allowed

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(attempt, range(20)))

    assert outcomes.count(True) == 5


class CachedPriceRouteClient:
    @staticmethod
    def fresh(django_app: Through) -> httpx.AsyncClient:
        """A client of a new route instance, which loads the catalogue and settings afresh."""
        transport = httpx.ASGITransport(
            app=cast(Any, CachedPriceRoute(django_app)), client=("203.0.113.7", 5000)
        )
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_hits_and_misses_carry_the_same_security_headers(client, django_app, cached):
    hit = await client.get("/api/v1/prices/BTCUSD")
    miss = await client.get("/api/v1/prices/ETHUSD")  # not cached: Django answers

    assert django_app.paths == ["/api/v1/prices/ETHUSD"]
    assert hit.status_code == miss.status_code == 200
    for response in (hit, miss):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert "strict-transport-security" not in response.headers  # plain http


async def test_a_hit_over_https_behind_the_proxy_carries_hsts(client, django_app, cached):
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        hit = await client.get("/api/v1/prices/BTCUSD", headers={"X-Forwarded-Proto": "https"})

    assert django_app.paths == []
    assert hit.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_plain_http_with_the_https_redirect_on_goes_to_django_which_redirects(cached):
    with override_settings(SECURE_SSL_REDIRECT=True):
        django_app = Through()  # Django's middleware reads the setting when it is built
        transport = httpx.ASGITransport(app=cast(Any, CachedPriceRoute(django_app)))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/api/v1/prices/BTCUSD")

    assert django_app.paths == ["/api/v1/prices/BTCUSD"]
    assert response.status_code == 301
    assert response.headers["location"] == "https://testserver/api/v1/prices/BTCUSD"
