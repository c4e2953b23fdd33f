"""Telegram's sending limits as token buckets: per chat, per group, overall, with priorities.

Every request that puts something in a chat waits here first (see `bot.telegram`), so the bot
stays under Telegram's limits instead of collecting 429s. Results go before status messages,
and those before progress edits; an edit also leaves a chat's last token to a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import count

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Priority(IntEnum):
    """Who goes first when tokens are scarce (lower first)."""

    RESULT = 0
    NORMAL = 1
    PROGRESS = 2


_priority: ContextVar[Priority | None] = ContextVar("telegram_priority", default=None)


@contextlib.contextmanager
def priority(level: Priority) -> Iterator[None]:
    """Send the Telegram requests made inside at this priority."""
    token = _priority.set(level)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> Priority:
    """The priority set by the innermost `priority()` block, NORMAL outside any."""
    return _priority.get() or Priority.NORMAL


@dataclass(frozen=True, slots=True)
class Limits:
    """Bucket sizes and refill rates; defaults keep clear of Telegram's published limits."""

    # About 1 message/s per chat, with a short burst.
    chat_rate: float = 1.0
    chat_burst: float = 3.0
    # 20 messages/min per group: burst + rate * 60 s stays at 20.
    group_rate: float = 0.29
    group_burst: float = 2.0
    # 30 messages/s overall; a burst of 1 keeps any one-second window under 30 even when
    # requests reach Telegram a little out of step with when they were let through.
    global_rate: float = 28.5
    global_burst: float = 1.0
    # Tokens a progress edit must leave in its chat's (and group's) bucket for a result.
    progress_reserve: float = 1.0

    def scaled(self, factor: float) -> Limits:
        """The same limits with every rate multiplied (tests against a fake Telegram)."""
        return replace(
            self,
            chat_rate=self.chat_rate * factor,
            group_rate=self.group_rate * factor,
            global_rate=self.global_rate * factor,
        )


@dataclass(slots=True)
class Bucket:
    """A token bucket: `capacity` tokens, refilled at `rate` per second."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last look."""
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, now: float, need: float) -> float:
        """Seconds until `need` tokens are there (0 when they are)."""
        self.refill(now)
        if self.tokens >= need - 1e-9:
            return 0.0
        return (need - self.tokens) / self.rate

    def block(self, now: float, seconds: float) -> None:
        """Empty the bucket so the next token comes only after `seconds` (Telegram said so)."""
        self.refill(now)
        self.tokens = min(self.tokens, 1.0 - seconds * self.rate)


def is_group(chat_id: int | str) -> bool:
    """Groups, supergroups and channels: negative ids or @usernames."""
    return isinstance(chat_id, str) or chat_id < 0


class RateLimiter:
    """Lets requests through as the buckets allow, in priority order, then arrival order."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._global = Bucket(
            self.limits.global_rate, self.limits.global_burst, self.limits.global_burst, now
        )
        self._chats: dict[int | str, Bucket] = {}
        self._groups: dict[int | str, Bucket] = {}
        self._waiters: list[_Waiter] = []
        self._seq = count()
        self._arrived = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    # -- the decision, synchronous and clock-driven (what the unit tests exercise) ---------

    def _buckets(self, chat_id: int | str | None, now: float) -> list[tuple[Bucket, bool]]:
        """The buckets a request to this chat draws from, each with whether it is per-chat."""
        limits = self.limits
        buckets: list[tuple[Bucket, bool]] = [(self._global, False)]
        if chat_id is None:
            return buckets
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = Bucket(
                limits.chat_rate, limits.chat_burst, limits.chat_burst, now
            )
        buckets.append((chat, True))
        if is_group(chat_id):
            group = self._groups.get(chat_id)
            if group is None:
                group = self._groups[chat_id] = Bucket(
                    limits.group_rate, limits.group_burst, limits.group_burst, now
                )
            buckets.append((group, True))
        return buckets

    def try_acquire(self, chat_id: int | str | None, level: Priority = Priority.NORMAL) -> float:
        """Take a token now and return 0, or return the seconds to wait (taking nothing)."""
        now = self._clock()
        buckets = self._buckets(chat_id, now)
        reserve = self.limits.progress_reserve if level is Priority.PROGRESS else 0.0
        # A bucket too small to leave a reserve asks an edit to find it full instead.
        wait = max(
            bucket.wait(now, min(bucket.capacity, 1.0 + (reserve if own else 0.0)))
            for bucket, own in buckets
        )
        if wait > 0:
            return wait
        for bucket, _own in buckets:
            bucket.tokens -= 1.0
        return 0.0

    def retry_after(self, chat_id: int | str | None, seconds: float) -> None:
        """Telegram answered 429: hold this chat (or everything) back for `seconds`."""
        now = self._clock()
        if chat_id is None:
            self._global.block(now, seconds)
            return
        for bucket, own in self._buckets(chat_id, now):
            if own:
                bucket.block(now, seconds)

    def forget_idle(self) -> None:
        """Drop buckets that are full again, so memory stays bounded by recent chats."""
        now = self._clock()
        for table in (self._chats, self._groups):
            for key in [k for k, b in table.items() if b.wait(now, b.capacity) == 0]:
                del table[key]

    # -- the async side --------------------------------------------------------------------

    async def acquire(self, chat_id: int | str | None, level: Priority = Priority.NORMAL) -> None:
        """Wait until a request to `chat_id` may be sent."""
        if not self._waiters and self.try_acquire(chat_id, level) == 0:
            return
        waiter = _Waiter(int(level), next(self._seq), chat_id, level)
        self._waiters.append(waiter)
        self._arrived.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    @property
    def waiting(self) -> int:
        """Requests waiting for a token."""
        return len(self._waiters)

    async def _dispatch(self) -> None:
        while self._waiters:
            self._arrived.clear()
            delay = self._grant()
            if not self._waiters:
                break
            if len(self._chats) > 10_000:
                self.forget_idle()
            await self._pause(delay)

    def _grant(self) -> float:
        """Let through every waiter the buckets allow, best first; the delay to the next."""
        self._waiters.sort(key=lambda w: (w.rank, w.seq))
        delay = float("inf")
        for waiter in list(self._waiters):
            if waiter.future.done():  # cancelled while waiting
                self._waiters.remove(waiter)
                continue
            wait = self.try_acquire(waiter.chat_id, waiter.level)
            if wait == 0:
                self._waiters.remove(waiter)
                waiter.future.set_result(None)
            else:
                delay = min(delay, wait)
        return delay

    async def _pause(self, delay: float) -> None:
        delay = min(delay, 1.0)  # waiters that went away leave no finite wait behind
        if self._sleep is not None:
            await self._sleep(delay)
            return
        # A newcomer may go at once (another chat with tokens left): wake up for it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), delay)

    async def close(self) -> None:
        """Stop the dispatcher (waiters left are cancelled)."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for waiter in self._waiters:
            waiter.future.cancel()
        self._waiters.clear()


@dataclass(eq=False)
class _Waiter:
    rank: int
    seq: int
    chat_id: int | str | None
    level: Priority
    future: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
