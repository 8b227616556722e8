"""The firing queue: a tick claims the triggers it crosses and hands them to the firing
consumer (``manage.py triggerfire``) instead of firing them in the feed's thread.

A Lua script (``triggers_claim``), atomic in Redis, so a trigger is enqueued once however
many feed processes see the same crossing: it looks up the members of the fire sets this bid
and ask cross, at most ``CLAIM_CHUNK`` of them, and for each removes it from the index sets,
records it in the symbol's ``queued`` hash and XADDs one entry (member, symbol, bid, ask,
tick time) to a partition stream ``marqetfi:triggers:fire:<n>``. A tick through more calls it again
(``triggers_enqueue``) until it claims fewer: no member id ever reaches the caller, and Redis
is never held by one call for longer than a chunk. The partition is a hash of the member's owner
(the position it acts on), so every trigger of one position is fired in the order its
crossings were seen (a stop-loss before a later take-profit), while the positions of one
symbol spread over ``TRIGGER_FIRE_PARTITIONS`` streams that several consumers drain in
parallel. Each partition is read by one consumer at a time (a lease in Redis, see
``trading.triggers.consumer``) through the consumer group ``GROUP``.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Final

from django.conf import settings
from redis.exceptions import ResponseError

from trading.triggers.index import KEY_PREFIX, OWNER, QUEUED, SETS, index_key, redis_connection, score

GROUP: Final = "firing"
STREAM_PREFIX: Final = f"{KEY_PREFIX}fire:"

# At most this many triggers claimed per script call: Redis runs a script to its end before
# any other command, so a call must stay short (a few ms) for the cache writes of other
# symbols; a crash through more is claimed in several calls.
CLAIM_CHUNK: Final = 256

# KEYS: the six sets (SETS order), the owner hash, the queued hash, then the partition streams.
# ARGV: symbol, bid, ask, tick time, now (ms), bid score, ask score, the most to claim.
# Returns how many it claimed; as many as asked for means there may be more.
_CLAIM: Final = """
local names = {'bid_below', 'bid_above', 'ask_above', 'ask_below', 'bid_rekey', 'ask_rekey'}
local partitions = #KEYS - 8
local bid, ask = ARGV[6], ARGV[7]
local ranges = {{bid, '+inf'}, {'-inf', bid}, {'-inf', ask}, {ask, '+inf'}}
local limit = tonumber(ARGV[8])
local queued = 0
for s = 1, 4 do
  if queued >= limit then break end
  local members = redis.call('ZRANGEBYSCORE', KEYS[s], ranges[s][1], ranges[s][2],
    'LIMIT', 0, limit - queued)
  for _, member in ipairs(members) do
    local left = {}
    for t = 1, 6 do
      if redis.call('ZREM', KEYS[t], member) == 1 then table.insert(left, names[t]) end
    end
    local owner = redis.call('HGET', KEYS[7], member)
    if not owner then owner = member end
    local h = 0
    for c = 1, #owner do h = (h * 31 + string.byte(owner, c)) % 2147483647 end
    local stream = KEYS[9 + (h % partitions)]
    redis.call('XADD', stream, '*', 'member', member, 'symbol', ARGV[1], 'bid', ARGV[2],
      'ask', ARGV[3], 'ts', ARGV[4])
    redis.call('HSET', KEYS[8], member,
      cjson.encode({g = owner, s = left, t = tonumber(ARGV[5])}))
    queued = queued + 1
  end
end
return queued
"""


def partitions() -> int:
    count: int = settings.TRIGGER_FIRE_PARTITIONS
    return max(1, count)


def stream_key(partition: int) -> str:
    return f"{STREAM_PREFIX}{partition}"


def stream_keys() -> list[str]:
    return [stream_key(n) for n in range(partitions())]


def triggers_claim(*, symbol: str, bid: Decimal, ask: Decimal, ts: datetime, limit: int = CLAIM_CHUNK) -> int:
    """Claim up to ``limit`` of the triggers this bid and ask cross in ``symbol``'s index and
    enqueue one firing each; returns how many this call claimed (``limit``: call again).

    The range lookup, the claim and the XADDs happen in one script inside Redis, so no
    member id travels to the caller and each call is bounded by ``limit`` whatever the crash.
    A member claimed leaves the fire sets, so the next call goes on where this one stopped;
    another process seeing the same crossing claims disjoint members, each exactly once."""
    keys = [index_key(symbol, name) for name in SETS]
    keys += [index_key(symbol, OWNER), index_key(symbol, QUEUED), *stream_keys()]
    args: list[str | int] = [
        symbol,
        str(bid),
        str(ask),
        ts.isoformat(),
        int(time.time() * 1000),
        repr(score(bid)),
        repr(score(ask)),
        max(1, limit),
    ]
    queued: int = redis_connection().register_script(_CLAIM)(keys=keys, args=args)
    return queued


def triggers_enqueue(*, symbol: str, bid: Decimal, ask: Decimal, ts: datetime) -> int:
    """Claim and enqueue every trigger this tick crosses, ``CLAIM_CHUNK`` per script call
    (between calls Redis serves the other symbols' writes); returns how many were enqueued."""
    total = 0
    while True:
        queued = triggers_claim(symbol=symbol, bid=bid, ask=ask, ts=ts)
        total += queued
        if queued < CLAIM_CHUNK:
            return total


def groups_ensure() -> None:
    """Create the consumer group of every partition stream (and the stream) if missing."""
    redis = redis_connection()
    for key in stream_keys():
        try:
            redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def queue_depth() -> int:
    """Entries enqueued and not yet settled, over every partition."""
    redis = redis_connection()
    with redis.pipeline(transaction=False) as pipe:
        for key in stream_keys():
            pipe.xlen(key)
        return sum(int(n) for n in pipe.execute())
