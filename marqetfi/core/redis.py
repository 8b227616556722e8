"""Redis clients for code that runs on an event loop.

Sync code reaches Redis through django-redis (``get_redis_connection``). Code on daphne's
event loop must not hop to a thread for each Redis call: under load the hops queue behind
the GIL and stall every socket of the process. It uses this process's asyncio client, one
per event loop (a client's connections belong to the loop that opened them).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from redis.asyncio import Redis

_clients: dict[asyncio.AbstractEventLoop, Redis] = {}


def async_redis() -> Redis:
    """The asyncio Redis client of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        for stale in [known for known in _clients if known.is_closed()]:
            del _clients[stale]
        client = _clients[loop] = Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return client
