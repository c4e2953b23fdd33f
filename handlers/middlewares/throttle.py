"""Per-sender flood control for the access middleware (no router): token buckets in an LRU."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

# How many users (and chats) the access checks remember; the least recent are forgotten first.
TRACKED = 10_000
# Updates a user may send in a burst, and how many a second refill it: more than a person
# pressing through menus and every button under a result (an album counts once) ever needs,
# while a script's flood runs dry within a second.
BURST = 30
REFILL_PER_SECOND = 2.0
# Telegram albums hold at most 10 items; only that many parts ride on the first one's token.
ALBUM_SIZE = 10


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


class Throttle:
    """Per-sender token buckets over a bounded table: floods are cut, one notice each."""

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
        self._buckets: LRU[int, _Bucket] = LRU(tracked)

    def check(self, key: int, album: str | None = None) -> bool | None:
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
