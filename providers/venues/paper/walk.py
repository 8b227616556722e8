"""The paper venue's synthetic prices: a deterministic random walk per pair, shared through Redis.

Redis holds one anchor per symbol, ``(price, second)``, in one hash. The mid at a later second
is a pure function of the anchor: one multiplicative step per elapsed second, each step drawn
from a hash of ``(symbol, anchor second, second)``. Every process (web, worker, feed) that
reads the same anchor therefore computes the same price without writing anything.

To bound the work the walk re-anchors every ``BLOCK_SECONDS``: the price at the end of a block
becomes the next anchor. That rule holds whether or not the new anchor has been stored, so
storing it (compare-and-set, so a price an operator set meanwhile is never overwritten) only
saves the next reader the steps. After ``IDLE_SECONDS`` without any reader the walk resumes
from the last stored price instead of catching up on hours of steps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from django_redis import get_redis_connection
from redis import Redis

from providers.venues.paper.markets import PaperPair, paper_pair

ANCHORS_KEY = "marqetfi:paper:anchors"
BLOCK_SECONDS = 300
IDLE_SECONDS = 900
INTERNAL_EXTRA_DIGITS = 4  # the walk runs this many digits finer than the tick, so small steps add up
_DRAW_RANGE = 1000  # each step draws an integer in [-1000, 1000]: a share of the step size
_STEP_UNITS_PER_BP = 1000  # the step size is kept in thousandths of a basis point
_FACTOR_ONE = 10_000 * _STEP_UNITS_PER_BP * _DRAW_RANGE  # a factor of 1 in these units

# KEYS[1] the anchors hash; ARGV triples (symbol, expected anchor, new anchor).
_COMPARE_AND_SET = """
local written = 0
for i = 1, #ARGV, 3 do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
        written = written + 1
    end
end
return written
"""


@dataclass(frozen=True)
class Anchor:
    price: Decimal
    second: int  # Unix time

    def encode(self) -> str:
        return f"{self.price}|{self.second}"

    @classmethod
    def decode(cls, raw: str) -> Anchor:
        price, second = raw.split("|")
        return cls(price=Decimal(price), second=int(second))


def round_to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """``value`` on a multiple of ``step`` (any step, not only powers of ten)."""
    return (value / step).to_integral_value(rounding=rounding) * step


def _draw(symbol: str, anchor_second: int, second: int) -> int:
    digest = hashlib.blake2b(f"{symbol}|{anchor_second}|{second}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2 * _DRAW_RANGE + 1) - _DRAW_RANGE


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        raise LookupError("a paper anchor vanished between seeding and reading it")
    return raw.decode() if isinstance(raw, bytes) else raw


class PaperPriceWalk:
    """Mids of the paper pairs at a given second; see the module docstring for the rule.

    Keeps, per symbol, the last price it computed from an anchor so that a process asked
    every second walks one step, not the whole block, each time.
    """

    def __init__(self, *, volatility_bps: Decimal) -> None:
        self.volatility_bps = volatility_bps
        self._memo: dict[str, tuple[Anchor, int, int]] = {}

    @staticmethod
    def _redis() -> Redis:
        return get_redis_connection("default")

    def mids(self, symbols: list[str], second: int) -> dict[str, Decimal]:
        """The mid of each known symbol at ``second``, on its tick."""
        pairs = [pair for symbol in symbols if (pair := paper_pair(symbol)) is not None]
        if not pairs:
            return {}
        anchors = self._anchors(pairs, second)
        mids: dict[str, Decimal] = {}
        moved: list[tuple[str, str, str]] = []
        for pair in pairs:
            stored = anchors[pair.symbol]
            price, anchor = self._price_at(pair, stored, second)
            if anchor != stored:
                moved.append((pair.symbol, stored.encode(), anchor.encode()))
            tick = pair.market.tick_size
            mids[pair.symbol] = max(round_to_step(price, tick, ROUND_HALF_EVEN), tick)
        if moved:
            self._redis().eval(_COMPARE_AND_SET, 1, ANCHORS_KEY, *(v for triple in moved for v in triple))
        return mids

    def set(self, prices: dict[str, Decimal], second: int) -> None:
        """Re-anchor each symbol at its price from ``second`` on (the walk continues from there)."""
        if prices:
            self._redis().hset(
                ANCHORS_KEY,
                mapping={s: Anchor(price=p, second=second).encode() for s, p in prices.items()},
            )

    def _anchors(self, pairs: list[PaperPair], second: int) -> dict[str, Anchor]:
        """The stored anchor of each pair; a pair seen for the first time starts at its seed price.

        Two processes seeding at once agree: HSETNX keeps the first anchor and both read it back.
        """
        connection = self._redis()
        symbols = [pair.symbol for pair in pairs]
        raw = connection.hmget(ANCHORS_KEY, symbols)
        missing = [pair for pair, value in zip(pairs, raw, strict=True) if value is None]
        if missing:
            with connection.pipeline(transaction=False) as pipe:
                for pair in missing:
                    pipe.hsetnx(ANCHORS_KEY, pair.symbol, Anchor(pair.seed_price, second).encode())
                pipe.hmget(ANCHORS_KEY, symbols)
                raw = pipe.execute()[-1]
        return {symbol: Anchor.decode(_text(value)) for symbol, value in zip(symbols, raw, strict=True)}

    def _price_at(self, pair: PaperPair, anchor: Anchor, second: int) -> tuple[Decimal, Anchor]:
        """The walk's price at ``second`` and the anchor of the block it falls in."""
        gap = second - anchor.second
        if gap <= 0:
            return anchor.price, anchor
        if gap > IDLE_SECONDS:
            anchor = Anchor(price=anchor.price, second=second - gap % BLOCK_SECONDS)
        while second - anchor.second >= BLOCK_SECONDS:
            end = anchor.second + BLOCK_SECONDS
            anchor = Anchor(price=self._walk(pair, anchor, end), second=end)
        return self._walk(pair, anchor, second), anchor

    def _walk(self, pair: PaperPair, anchor: Anchor, second: int) -> Decimal:
        """One step per second from the anchor (or from this process's last point on the same path).

        Integer arithmetic in units of the walk's grain (a ten-thousandth of the tick): exact,
        identical in every process, and a few microseconds per step.
        """
        grain = pair.market.tick_size.scaleb(-INTERNAL_EXTRA_DIGITS)
        units, done = int(round_to_step(anchor.price, grain, ROUND_HALF_EVEN) / grain), anchor.second
        memo = self._memo.get(pair.symbol)
        if memo is not None and memo[0] == anchor and anchor.second <= memo[1] <= second:
            done, units = memo[1], memo[2]
        step = int((self.volatility_bps * pair.volatility_scale * _STEP_UNITS_PER_BP).to_integral_value())
        for current in range(done + 1, second + 1):
            factor = _FACTOR_ONE + step * _draw(pair.symbol, anchor.second, current)
            units = max((units * factor + _FACTOR_ONE // 2) // _FACTOR_ONE, 1)
        self._memo[pair.symbol] = (anchor, second, units)
        return units * grain
