"""Cached price reads answered in front of Django, on the event loop.

``GET /api/v1/prices/{symbol}`` and ``GET /api/v1/prices?symbols=...`` are what every open
app polls. When every symbol asked is a known pair whose price is in the cache, this route
answers with one Redis round trip (a Lua call that reads the prices and counts the request
against the same rate limits Django's throttles use, over the process's pipelined
connection) and no thread hop: the body is the one the DRF views write, built by the same
``price_body``, under the same security headers as Django's (``marqetfi.core.security_headers``).

Everything else goes to Django unchanged, where the full stack decides: a price not in the
cache (the venue fetch, single flight), ``max_age_ms``, an unknown or malformed symbol, a
client over its rate limit (DRF answers the 429 with ``Retry-After``), a browser request
with an ``Origin`` (CORS), an ``Authorization`` header that is not a valid access token
(DRF answers 401), maintenance mode, plain http while ``SECURE_SSL_REDIRECT`` is on (Django
redirects it), any Redis error. A request handed over has counted
nothing here, so the throttles count it once.

The pair catalogue and the app settings (rates, staleness limits, maintenance) are held in
memory and reloaded at most once a second from a worker thread; a pair switched off is
therefore still answered here for up to a second, until the reload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from prometheus_client import Counter
from redis.exceptions import NoScriptError, RedisError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import AccessToken

from marqetfi.core.app_settings.cache import app_setting, app_settings_refresh
from marqetfi.core.app_settings.platform import MAINTENANCE_MODE
from marqetfi.core.logging import bind_user, request_id_var
from marqetfi.core.middleware import valid_request_id
from marqetfi.core.redis import command_pack, pipelined_redis
from marqetfi.core.security_headers import asgi_request_is_secure, asgi_security_headers
from marqetfi.core.throttling import (
    CONSUME_SCRIPT,
    CONSUME_SHA,
    RateWindow,
    client_address,
    consume_args,
    scope_rate,
)
from pricing.metrics import PRICE_CACHE_HITS, PRICE_FAST_PATH_ANSWERS
from pricing.models import TradingPair
from pricing.services.prices import PriceTick, price_body, price_cache_key, price_judge, tick_parse

logger = logging.getLogger("marqetfi.access")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PRICES_PATH: Final = "/api/v1/prices"
_SINGLE_PATH: Final = re.compile(r"^/api/v1/prices/([A-Za-z0-9]{1,32})$")
MAX_SYMBOLS: Final = 100
RELOAD_SECONDS: Final = 1.0
_CONTENT_HEADERS: Final = ((b"content-type", b"application/json"), (b"vary", b"Accept"))
_SCRIPT_BODY: Final = CONSUME_SCRIPT.encode()
_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one, not one per json.dumps


class CachedPriceRoute:
    """An ASGI app that answers cached price reads itself and passes everything else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pairs: dict[str, TradingPair] = {}
        self._loaded_at: float | None = None
        self._cache_keys: dict[str, bytes] = {}
        self._hits: dict[str, Counter] = {}
        self._ticks: dict[str, tuple[bytes, PriceTick]] = {}  # the last cached tick read, parsed
        self._reload_task: asyncio.Task[None] | None = None
        self._request_id_header = settings.REQUEST_ID_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        symbols = _symbols_asked(scope)
        if symbols is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        answer = await self._answer(scope, headers, symbols)
        if answer is None:
            await self.app(scope, receive, send)
            return
        await self._respond(scope, headers, send, answer, started)

    async def _answer(
        self, scope: Scope, headers: dict[bytes, bytes], symbols: list[str]
    ) -> tuple[dict[str, Any] | list[dict[str, Any]], str | None] | None:
        """The body to answer and the signed-in user's id, or None to hand the request to Django."""
        caller = await self._eligible(scope, headers, symbols)
        if caller is None:
            return None
        pairs, user_id = caller
        args = consume_args(
            _rate_windows(scope, headers, user_id), [self._cache_keys[pair.symbol] for pair in pairs]
        )
        redis = pipelined_redis()
        try:
            try:
                reply = await redis.execute_packed(command_pack(b"EVALSHA", CONSUME_SHA, *args))
            except NoScriptError:  # a new or flushed Redis: EVAL loads it for the next EVALSHA
                reply = await redis.execute_packed(command_pack(b"EVAL", _SCRIPT_BODY, *args))
        except RedisError:
            logger.warning("Cached price route: Redis failed; handing the request to Django", exc_info=True)
            return None
        if reply[0] != 1:  # {0}: a price is not cached, {2, wait}: over a limit; nothing counted
            return None
        now = timezone.now()
        bodies = []
        for pair, raw in zip(pairs, reply[2:], strict=True):
            last = self._ticks.get(pair.symbol)
            if last is not None and last[0] == raw:
                tick = last[1]  # the feed writes a few times a second; reads are many more
            else:
                parsed = tick_parse(pair.symbol, raw)
                if parsed is None:
                    return None
                self._ticks[pair.symbol] = (raw, parsed)
                tick = parsed
            bodies.append(price_body(price_judge(tick, pair, now)))
        for pair in pairs:
            self._hits[pair.category].inc()
        body = {"prices": bodies, "errors": {}} if scope["path"] == PRICES_PATH else bodies[0]
        return body, user_id

    async def _eligible(
        self, scope: Scope, headers: dict[bytes, bytes], symbols: list[str]
    ) -> tuple[list[TradingPair], str | None] | None:
        """The pairs asked and the signed-in user's id, if this route may answer; else None."""
        if b"origin" in headers:
            return None
        if settings.SECURE_SSL_REDIRECT and not asgi_request_is_secure(scope, headers):
            return None  # Django redirects it to https
        signed_in, user_id = _bearer_user(headers.get(b"authorization"))
        if not signed_in:
            return None
        await self._catalogue_fresh()
        if app_setting(MAINTENANCE_MODE).enabled:
            return None
        pairs = [self.pairs[symbol] for symbol in symbols if symbol in self.pairs]
        if len(pairs) != len(symbols):
            return None
        return pairs, user_id

    async def _respond(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        send: Send,
        answer: tuple[dict[str, Any] | list[dict[str, Any]], str | None],
        started: float,
    ) -> None:
        incoming = headers.get(self._request_id_header)
        if incoming is not None and valid_request_id(incoming.decode("latin-1")):
            request_id = incoming
        else:
            request_id = os.urandom(16).hex().encode()  # the shape of Django's: 32 hex digits
        body = _JSON.encode(answer[0]).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *_CONTENT_HEADERS,
                    *asgi_security_headers(secure=asgi_request_is_secure(scope, headers)),
                    (b"content-length", b"%d" % len(body)),
                    (self._request_id_header, request_id),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        PRICE_FAST_PATH_ANSWERS.inc()
        if not logger.isEnabledFor(logging.INFO):
            return
        token = request_id_var.set(request_id.decode("latin-1"))
        if answer[1]:
            bind_user(answer[1])
        try:
            logger.info(
                "GET %s 200",
                scope["path"],
                extra={
                    "http_method": "GET",
                    "path": scope["path"],
                    "status": 200,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "route": "cached_price",
                },
            )
        finally:
            request_id_var.reset(token)
            bind_user(None)

    async def _catalogue_fresh(self) -> None:
        """Load the catalogue before the first answer; afterwards reload it in the background."""
        now = time.monotonic()
        if self._loaded_at is None:
            await sync_to_async(self._reload)()
        elif now - self._loaded_at >= RELOAD_SECONDS and (
            self._reload_task is None or self._reload_task.done()
        ):
            self._reload_task = asyncio.create_task(sync_to_async(self._reload)())

    def _reload(self) -> None:
        close_old_connections()
        try:
            app_settings_refresh()
            pairs = {pair.symbol: pair for pair in TradingPair.objects.filter(active=True)}
            self._cache_keys = {symbol: price_cache_key(symbol).encode() for symbol in pairs}
            self._hits = {
                category: PRICE_CACHE_HITS.labels(category=category)
                for category in {pair.category for pair in pairs.values()}
            }
            self.pairs = pairs  # last: a pair in it has its key and counter
        except Exception:
            logger.warning("Cached price route: cannot reload the pair catalogue", exc_info=True)
        finally:
            self._loaded_at = time.monotonic()
            close_old_connections()


def _symbols_asked(scope: Scope) -> list[str] | None:
    """The symbols of a plain price read this route may answer, or None for anything else."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return None
    path: str = scope["path"]
    query = scope.get("query_string", b"")
    if path == PRICES_PATH:
        params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
        if list(params) != ["symbols"] or len(params["symbols"]) != 1:
            return None
        asked = [symbol.strip().upper() for symbol in params["symbols"][0].split(",") if symbol.strip()]
        if not asked or len(asked) > MAX_SYMBOLS:
            return None
        return list(dict.fromkeys(asked))  # each once, in the order first asked (as Django does)
    match = _SINGLE_PATH.match(path)
    if match is None or query:
        return None
    return [match.group(1).upper()]


def _bearer_user(authorization: bytes | None) -> tuple[bool, str | None]:
    """(True, None) without the header, (True, user id) for a valid access token, else (False, None)."""
    if authorization is None:
        return True, None
    scheme, _, raw = authorization.decode("latin-1").partition(" ")
    if scheme not in jwt_settings.AUTH_HEADER_TYPES or not raw.strip():
        return False, None
    try:
        token = AccessToken(raw.strip())  # type: ignore[arg-type]  # simplejwt takes the str too
    except TokenError:
        return False, None
    user_id = token.get(jwt_settings.USER_ID_CLAIM)
    return (True, str(user_id)) if user_id else (False, None)


def _rate_windows(scope: Scope, headers: dict[bytes, bytes], user_id: str | None) -> list[RateWindow]:
    """The windows DRF's default throttles (anon + user) would count this request in."""
    windows: list[RateWindow] = []
    if user_id:
        ident = user_id
    else:
        forwarded = headers.get(b"x-forwarded-for")
        client = scope.get("client") or (None, None)
        ident = client_address(forwarded.decode("latin-1") if forwarded else None, client[0])
        if (anon := scope_rate("anon")) is not None:
            windows.append(RateWindow(f"throttle_anon_{ident}", *anon))
    if (user := scope_rate("user")) is not None:
        windows.append(RateWindow(f"throttle_user_{ident}", *user))
    return windows
