"""The firing queue: a tick claims the triggers it crosses and hands them to the firing
consumer (``manage.py triggerfire``) instead of firing them in the feed's thread.

One Lua script per tick (``triggers_enqueue``), atomic in Redis, so a trigger is enqueued once
however many feed processes see the same crossing: for each crossed member still in its fire
set at a crossing score, it removes the member from the index sets, records it in the
symbol's ``queued`` hash and XADDs one entry (member, symbol, bid, ask, tick time) to a
partition stream ``marqetfi:triggers:fire:<n>``. The partition is a hash of the member's owner
(the position it acts on), so every trigger of one position is fired in the order its
crossings were seen (a stop-loss before a later take-profit), while the positions of one
symbol spread over ``TRIGGER_FIRE_PARTITIONS`` streams that several consumers drain in
parallel. Each partition is read by one consumer at a time (a lease in Redis, see
``trading.triggers.consumer``) through the consumer group ``GROUP``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final

from django.conf import settings
from redis.exceptions import ResponseError

from trading.triggers.index import KEY_PREFIX, OWNER, QUEUED, SETS, index_key, redis_connection, score

GROUP: Final = "firing"
STREAM_PREFIX: Final = f"{KEY_PREFIX}fire:"

# KEYS: the six sets (SETS order), the owner hash, the queued hash, then the partition streams.
# ARGV: symbol, bid, ask, tick time, now (ms), bid score, ask score, then the members.
_ENQUEUE: Final = """
local names = {'bid_below', 'bid_above', 'ask_above', 'ask_below', 'bid_rekey', 'ask_rekey'}
local partitions = #KEYS - 8
local bid, ask = tonumber(ARGV[6]), tonumber(ARGV[7])
local queued = 0
for i = 8, #ARGV do
  local member = ARGV[i]
  local crossing = false
  for s = 1, 4 do
    local at = redis.call('ZSCORE', KEYS[s], member)
    if at then
      at = tonumber(at)
      if (s == 1 and bid <= at) or (s == 2 and bid >= at) or (s == 3 and ask >= at)
        or (s == 4 and ask <= at) then
        crossing = true
      end
    end
  end
  if crossing then
    local left = {}
    for s = 1, 6 do
      if redis.call('ZREM', KEYS[s], member) == 1 then table.insert(left, names[s]) end
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


def triggers_enqueue(
    *, symbol: str, members: Sequence[bytes | str], bid: Decimal, ask: Decimal, ts: datetime
) -> int:
    """Claim the crossed ones among ``members`` (index candidates of one tick) and enqueue one
    firing each; returns how many this call enqueued (a member another process claimed first,
    or whose score moved away, is skipped). One round trip."""
    if not members:
        return 0
    names = [m.decode() if isinstance(m, bytes) else m for m in dict.fromkeys(members)]
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
        *names,
    ]
    queued: int = redis_connection().register_script(_ENQUEUE)(keys=keys, args=args)
    return queued


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
