"""The machine's practical limit for a cached read: a bare ASGI app answering with one Redis GET.

Served by the same daphne as the product (``daphne bench.baseline_asgi:application``), so the
ratio of our figures to these isolates what our own code costs.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio as redis

_client = redis.Redis.from_url(os.environ["REDIS_URL"])
KEY = "bench:baseline:price"


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _client.get(KEY) or b"{}"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})
