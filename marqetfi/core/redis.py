"""Redis clients for code that runs on an event loop.

Sync code reaches Redis through django-redis (``get_redis_connection``). Code on daphne's
event loop must not hop to a thread for each Redis call: under load the hops queue behind
the GIL and stall every socket of the process. It uses this process's asyncio client, one
per event loop (a client's connections belong to the loop that opened them).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

ASYNC_POOL_MAX_CONNECTIONS = 32
ASYNC_POOL_WAIT_SECONDS = 10
_clients: dict[asyncio.AbstractEventLoop, Redis] = {}


def async_redis() -> Redis:
    """The asyncio Redis client of the running event loop (made on first use)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        for stale in [known for known in _clients if known.is_closed()]:
            del _clients[stale]
        # A bounded pool that makes callers wait for a free connection: a wave of sockets
        # (thousands of sign-ins at once after a deploy) must not open a connection each.
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=ASYNC_POOL_MAX_CONNECTIONS,
            timeout=ASYNC_POOL_WAIT_SECONDS,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        client = _clients[loop] = Redis(connection_pool=pool)
    return client
