"""Who is connected, in Redis, across every web process: sockets per user and the
cancel-on-disconnect bookkeeping.

Sockets per user: a sorted set per user of session ids scored by when they lapse; each
heartbeat pushes a socket's lapse forward, a closed socket leaves at once, and a socket of a
process that died lapses on its own.

Cancel-on-disconnect: a hash per user of the opted-in sockets and their ``timeout_ms``.
When the last of them goes, a deadline (the latest of "gone + timeout" among the sockets
that went) and an arming token are stored, and a task is scheduled for the deadline. An
opted-in socket that comes back (or sends the op again) clears both, so the task finds
nothing armed and does nothing.
"""

from __future__ import annotations

from typing import Any, Final

from django.conf import settings
from django_redis import get_redis_connection
from redis import Redis

from marqetfi.core.redis import async_redis

SOCKET_LAPSE_MARGIN_MS: Final = 5_000
COD_STATE_TTL_MS: Final = 24 * 3600 * 1000

_SOCKET_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"""

# KEYS: sockets hash, deadline, arm token. ARGV: session, now ms, new token, state ttl ms.
# Returns the deadline (ms) when this was the last opted-in socket, -1 when others remain,
# -2 when the socket had not opted in.
_COD_GONE = """
local timeout = redis.call('HGET', KEYS[1], ARGV[1])
if not timeout then return -2 end
redis.call('HDEL', KEYS[1], ARGV[1])
local deadline = tonumber(ARGV[2]) + tonumber(timeout)
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous > deadline then deadline = previous end
redis.call('SET', KEYS[2], deadline, 'PX', ARGV[4])
if redis.call('HLEN', KEYS[1]) > 0 then return -1 end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return deadline
"""

# KEYS: sockets hash, deadline, arm token. ARGV: token, now ms.
# -1: disarmed (a socket came back or another arming superseded this one); 0: due now, and
# disarmed by this call; > 0: milliseconds still to wait.
_COD_DUE = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
if redis.call('HLEN', KEYS[1]) > 0 then return -1 end
local deadline = tonumber(redis.call('GET', KEYS[2]) or '0')
local remaining = deadline - tonumber(ARGV[2])
if remaining > 0 then return remaining end
redis.call('DEL', KEYS[2], KEYS[3])
return 0
"""


def _redis() -> Redis:
    return get_redis_connection("default")


def _key(*parts: Any) -> str:
    return ":".join([settings.STREAM_CHANNEL_PREFIX, *map(str, parts)])


def socket_lapse_ms() -> int:
    return int(settings.STREAM_HEARTBEAT_MS + settings.STREAM_PONG_TIMEOUT_MS + SOCKET_LAPSE_MARGIN_MS)


async def socket_admit(*, user_id: Any, session_id: str, now_ms: int) -> bool:
    """Count this socket among the user's (or refresh it); False when the user is at the limit.

    On the event loop's own client: sockets call it on every heartbeat."""
    admitted = await async_redis().eval(
        _SOCKET_ADMIT,
        1,
        _key("sockets", user_id),
        now_ms,
        now_ms + socket_lapse_ms(),
        session_id,
        settings.STREAM_MAX_SOCKETS_PER_USER,
    )
    return bool(admitted)


def socket_leave(*, user_id: Any, session_id: str) -> None:
    _redis().zrem(_key("sockets", user_id), session_id)


def _cod_keys(user_id: Any) -> tuple[str, str, str]:
    return _key("cod", user_id, "sockets"), _key("cod", user_id, "deadline"), _key("cod", user_id, "arm")


def cod_enable(*, user_id: Any, session_id: str, timeout_ms: int) -> None:
    """The socket opts in (or changes its timeout); anything armed for the user is disarmed."""
    sockets, deadline, arm = _cod_keys(user_id)
    pipe = _redis().pipeline()
    pipe.hset(sockets, session_id, timeout_ms)
    pipe.pexpire(sockets, COD_STATE_TTL_MS)
    pipe.delete(deadline, arm)
    pipe.execute()


def cod_disable(*, user_id: Any, session_id: str) -> None:
    """The socket opts out: its going away will cancel nothing."""
    _redis().hdel(_cod_keys(user_id)[0], session_id)


def cod_socket_gone(*, user_id: Any, session_id: str, now_ms: int, token: str) -> int | None:
    """An opted-in socket closed. Returns the deadline (epoch ms) armed with ``token`` when it was
    the user's last opted-in socket, else None."""
    result = int(
        _redis().eval(_COD_GONE, 3, *_cod_keys(user_id), session_id, now_ms, token, COD_STATE_TTL_MS)
    )
    return result if result >= 0 else None


def cod_due(*, user_id: Any, token: str, now_ms: int) -> int:
    """-1: nothing to do; 0: cancel now (disarmed by this call); > 0: ms still to wait."""
    return int(_redis().eval(_COD_DUE, 3, *_cod_keys(user_id), token, now_ms))
