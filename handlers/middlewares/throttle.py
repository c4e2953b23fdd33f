"""Per-sender flood control for the access middleware (no router): token buckets.

In one process the buckets sit in an LRU; with replicas they sit in Redis (`RedisThrottle`),
so a sender has one allowance however many replicas their updates reach.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# How many users (and chats) the access checks remember; the least recent are forgotten first.
TRACKED = 10_000
# Updates a user may send in a burst, and how many a second refill it: more than a person
# pressing through menus and every button under a result (an album counts once) ever needs,
# while a script's flood runs dry within a second.
BURST = 30
REFILL_PER_SECOND = 2.0
# Telegram albums hold at most 10 items; only that many parts ride on the first one's token.
ALBUM_SIZE = 10
# A Redis outage is reported at most this often.
WARN_EVERY = 60.0


K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A dict that keeps only its `size` most recently used entries."""

    def __init__(self, size: int = TRACKED) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value (now the most recent), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store a value, forgetting the least recently used entry when full."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    album: str | None = None
    album_parts: int = 0
    told: bool = False


class FloodGate(Protocol):
    """Per-sender flood control: floods are cut, one notice each."""

    async def check(self, key: int | str, album: str | None = None) -> bool | None:
        """True: go on. False: drop and tell them (once per flood). None: drop quietly."""
        ...


class Throttle:
    """Per-sender token buckets over a bounded table in this process: one replica."""

    def __init__(
        self,
        *,
        burst: int = BURST,
        per_second: float = REFILL_PER_SECOND,
        tracked: int = TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self._clock = clock
        # A forgotten sender starts with a full bucket, which is what a quiet one has anyway.
        self._buckets: LRU[int | str, _Bucket] = LRU(tracked)

    async def check(self, key: int | str, album: str | None = None) -> bool | None:
        """True: go on. False: drop and tell them (once per flood). None: drop quietly."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), at=now)
            self._buckets.put(key, bucket)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_second)
        bucket.at = now
        if bucket.tokens >= self.burst:
            bucket.told = False  # quiet long enough: a later flood is told again
        same_album = album is not None and album == bucket.album
        if same_album:
            bucket.album_parts += 1
            if bucket.album_parts <= ALBUM_SIZE:
                return True  # the rest of an album its first part paid for
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            if not same_album:
                bucket.album, bucket.album_parts = album, 1
            return True
        if bucket.told:
            return None
        bucket.told = True
        return False

    def __len__(self) -> int:
        return len(self._buckets)


# KEYS: the sender's bucket. ARGV: burst, refill per second, album ('' for none), album size,
# keep (ms). The same rules as `Throttle.check`, on Redis' clock so replicas agree.
# Returns 1 (go on), 0 (drop and tell), -1 (drop quietly).
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local burst, rate, album = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'album', 'parts', 'told')
local tokens, at = tonumber(b[1]) or burst, tonumber(b[2]) or now
local last_album, parts, told = b[3] or '', tonumber(b[4]) or 0, b[5] == '1'
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
if tokens >= burst then told = false end
local verdict
local same = album ~= '' and album == last_album
if same then parts = parts + 1 end
if same and parts <= tonumber(ARGV[4]) then
  verdict = 1
elseif tokens >= 1 then
  tokens = tokens - 1
  if not same then last_album, parts = album, 1 end
  verdict = 1
elseif told then
  verdict = -1
else
  told, verdict = true, 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', string.format('%.6f', now),
  'album', last_album, 'parts', parts, 'told', told and '1' or '0')
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return verdict
"""


class RedisThrottle:
    """Per-sender token buckets in Redis, shared by every replica of the bot."""

    def __init__(
        self, redis: Redis, *, burst: int = BURST, per_second: float = REFILL_PER_SECOND
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self._check = redis.register_script(_CHECK)
        # A bucket left alone until full is the same as none: it is forgotten then (a day
        # at most, should it never refill).
        full = burst / per_second if per_second > 0 else 86_400.0
        self._keep_ms = int((min(full, 86_400.0) + 1.0) * 1000)
        # While Redis is out of reach, floods are cut per replica rather than not at all.
        self._local = Throttle(burst=burst, per_second=per_second)
        self._warned_at = -WARN_EVERY

    async def check(self, key: int | str, album: str | None = None) -> bool | None:
        """True: go on. False: drop and tell them (once per flood). None: drop quietly."""
        args: list[str | int | float] = [
            self.burst,
            self.per_second,
            album or "",
            ALBUM_SIZE,
            self._keep_ms,
        ]
        try:
            verdict = int(await self._check(keys=[f"mjbot:throttle:{key}"], args=args))
        except (RedisError, OSError) as error:
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "Redis is out of reach (%s): floods are cut per replica meanwhile",
                    type(error).__name__,
                )
            return await self._local.check(key, album)
        return {1: True, 0: False}.get(verdict)
