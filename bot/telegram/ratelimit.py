"""Telegram's sending limits: per chat, per group, overall, with priorities.

Every request that puts something in a chat waits here first (see `bot.telegram.session`), so
the bot stays under Telegram's limits instead of collecting 429s. Results go before status
messages, and those before progress edits; an edit also leaves a chat's last slot to a result.
A request may carry a last-moment check (`only_if`): an edit that waited while its message was
deleted, or while another edit made it moot, is dropped when its slot comes, costing nothing.

Telegram counts a message when it arrives, somewhere between the moment we let it go and the
moment its answer comes back; an upload can take longer than the gap between two grants. So the
hard limits (30 a second overall, 20 a minute per group) are sliding windows in which a request
counts from its grant until one window after its answer: then no window of Telegram's can hold
more than the limit, however late each request arrives. A private chat's "about one a second,
short bursts allowed" is a token bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from enum import IntEnum
from itertools import count
from typing import TYPE_CHECKING

from bot.telegram.rate_windows import Bucket, Limit, Scope, Window

if TYPE_CHECKING:  # it builds on this module; an instance is handed in
    from bot.telegram.shared_budget import SharedBudget

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
# Waiters asked of the shared budget in one script run, best first (it holds Redis meanwhile).
ASKED_AT_ONCE = 50


class Priority(IntEnum):
    """Who goes first when slots are scarce (lower first)."""

    RESULT = 0
    NORMAL = 1
    PROGRESS = 2
    # "Number N in the queue" edits: the least urgent thing the bot sends.
    NOTICE = 3


_priority: ContextVar[Priority | None] = ContextVar("telegram_priority", default=None)
_go: ContextVar[Callable[[], bool] | None] = ContextVar("telegram_go", default=None)


class UnwantedError(Exception):
    """A request dropped when its slot came, because its `only_if` check said no."""


@contextlib.contextmanager
def only_if(go: Callable[[], bool]) -> Iterator[None]:
    """Send the counted requests made inside only if `go()` holds when their slot comes.

    `go` is asked at the moment a request would be let through (again for each resend); when
    it says no, the request raises UnwantedError instead, and no slot is spent on it.
    """
    token = _go.set(go)
    try:
        yield
    finally:
        _go.reset(token)


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
    level = _priority.get()
    # Not `or`: RESULT is 0, and a falsy level must not fall back to NORMAL.
    return Priority.NORMAL if level is None else level


@dataclass(frozen=True, slots=True)
class Limits:
    """Telegram's published limits, and the bucket that models a private chat."""

    # About 1 message/s per chat, with a short burst.
    chat_rate: float = 1.0
    chat_burst: float = 3.0
    # 20 messages in any minute per group.
    group_window: float = 60.0
    group_most: int = 20
    # 30 messages in any second overall.
    global_window: float = 1.0
    global_most: int = 30
    # Slots a progress edit must leave in its chat's limit for a result.
    progress_reserve: int = 1
    # Overall, status messages (a burst of queue notices) leave a few slots to results, and
    # progress edits more, so that a result never waits for a second of them to pass.
    status_global_reserve: int = 2
    progress_global_reserve: int = 5
    # A group's minute is scarce (20): status messages leave a few slots to results, and
    # progress edits leave many, so that several results finishing at once never wait for it.
    status_group_reserve: int = 3
    progress_group_reserve: int = 8
    # Queue notice edits leave what progress edits do, and a third of the overall second.
    notice_global_reserve: int = 10

    def scaled(self, factor: float) -> Limits:
        """The same limits, every one `factor` times faster (tests against a fake Telegram)."""
        return replace(
            self,
            chat_rate=self.chat_rate * factor,
            group_window=self.group_window / factor,
            global_window=self.global_window / factor,
        )


def is_group(chat_id: int | str) -> bool:
    """Groups, supergroups and channels: negative ids or @usernames."""
    return isinstance(chat_id, str) or chat_id < 0


class RateLimiter:
    """Lets requests through as the limits allow, in priority order, then arrival order."""

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
        self._global = Window(self.limits.global_window, self.limits.global_most)
        self._chats: dict[int | str, Bucket] = {}
        self._groups: dict[int | str, Window] = {}
        self._waiters: list[_Waiter] = []
        self._seq = count()
        self._arrived = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        # With replicas: the budget all of them share, passed after this replica's own.
        self.shared: SharedBudget | None = None

    def share(self, budget: SharedBudget) -> None:
        """Let requests through as the replicas' shared budget allows, in this one's order."""
        # Its own limits then count what it sent, and decide alone while Redis is out of reach.
        self.shared = budget

    # -- the decision, synchronous and clock-driven (what the unit tests exercise) ---------

    def _limits(self, chat_id: int | str | None, now: float) -> list[tuple[Limit, Scope]]:
        """The limits a request to this chat must pass, each with what it limits."""
        limits = self.limits
        found: list[tuple[Limit, Scope]] = [(self._global, "global")]
        if chat_id is None:
            return found
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = Bucket(
                limits.chat_rate, limits.chat_burst, limits.chat_burst, now
            )
        found.append((chat, "chat"))
        if is_group(chat_id):
            group = self._groups.get(chat_id)
            if group is None:
                group = self._groups[chat_id] = Window(limits.group_window, limits.group_most)
            found.append((group, "group"))
        return found

    def try_acquire(
        self,
        chat_id: int | str | None,
        level: Priority = Priority.NORMAL,
        go: Callable[[], bool] | None = None,
    ) -> float:
        """Take a slot now and return 0 (`release` it once answered), or the seconds to wait.

        With a slot free, `go` (if given) is asked whether the request still wants it; a no
        raises UnwantedError and takes nothing.
        """
        now = self._clock()
        found = self._limits(chat_id, now)
        reserves = self._reserves(level)
        wait = max(limit.wait(now, 1 + reserves[scope]) for limit, scope in found)
        if wait > 0:
            return wait
        if go is not None and not go():
            raise UnwantedError
        for limit, _scope in found:
            limit.take()
        return 0.0

    def _reserves(self, level: Priority) -> dict[Scope, int]:
        """Slots a request at this level must leave free in each limit, for more urgent ones."""
        limits = self.limits
        if level is Priority.RESULT:
            return {"chat": 0, "group": 0, "global": 0}
        if level is Priority.NORMAL:
            return {
                "chat": 0,
                "group": limits.status_group_reserve,
                "global": limits.status_global_reserve,
            }
        overall = (
            limits.progress_global_reserve
            if level is Priority.PROGRESS
            else limits.notice_global_reserve
        )
        return {
            "chat": limits.progress_reserve,
            "group": limits.progress_group_reserve,
            "global": overall,
        }

    def release(self, chat_id: int | str | None) -> None:
        """A request let through has its answer (or failed): it counts one window more."""
        now = self._clock()
        for limit, _scope in self._limits(chat_id, now):
            limit.done(now)
        if self._waiters:
            self._arrived.set()

    def retry_after(self, chat_id: int | str | None, seconds: float) -> None:
        """Telegram answered 429: hold this chat (or everything) back for `seconds`."""
        now = self._clock()
        for limit, scope in self._limits(chat_id, now):
            if scope != "global" or chat_id is None:
                limit.block(now, seconds)

    def forget_idle(self) -> None:
        """Drop limits that no longer hold anything back, so memory stays bounded."""
        now = self._clock()
        for table in (self._chats, self._groups):
            for key in [k for k, limit in table.items() if limit.idle(now)]:
                del table[key]

    # -- the async side --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def slot(
        self, chat_id: int | str | None, level: Priority = Priority.NORMAL
    ) -> AsyncIterator[None]:
        """Wait until a request to `chat_id` may go; it counts until the block is left."""
        shared = await self.acquire(chat_id, level)
        try:
            yield
        finally:
            if shared and self.shared is not None:
                await self.shared.release(chat_id, shared)
            self.release(chat_id)

    async def told_to_wait(self, chat_id: int | str | None, seconds: float) -> None:
        """Telegram answered 429: hold back here, and every replica when they share a budget."""
        self.retry_after(chat_id, seconds)
        if self.shared is not None:
            await self.shared.retry_after(chat_id, seconds)

    async def acquire(self, chat_id: int | str | None, level: Priority = Priority.NORMAL) -> str:
        """Wait until a request may go (`release` it when answered); its shared budget id or "".

        Raises UnwantedError, holding no slot, when the request's `only_if` check says no.
        """
        go = _go.get()
        if self.shared is None and not self._waiters and self.try_acquire(chat_id, level, go) == 0:
            return ""
        waiter = _Waiter(int(level), next(self._seq), chat_id, level, go)
        self._waiters.append(waiter)
        self._arrived.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif not waiter.future.cancelled() and waiter.future.exception() is None:
                # Granted in the same instant as cancelled: give the slot back.
                self.release(chat_id)
                if waiter.future.result() and self.shared is not None:
                    await self.shared.give_back(chat_id, waiter.future.result())
            raise

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    async def _dispatch(self) -> None:
        while self._waiters:
            self._arrived.clear()
            if self.shared is None:
                delay = self._grant()
            else:
                delay = await self._grant_shared(self.shared)
            if not self._waiters:
                break
            if len(self._chats) + len(self._groups) > 10_000:
                self.forget_idle()
            await self._pause(delay)

    def _grant(self) -> float:
        """Let through every waiter the limits allow, best first; the delay to the next."""
        self._waiters.sort(key=lambda w: (w.rank, w.seq))
        delay = math.inf
        now = self._clock()
        for waiter in list(self._waiters):
            if waiter.future.done():  # cancelled while waiting
                self._waiters.remove(waiter)
                continue
            overall = self._global.wait(now, 1 + self._reserves(waiter.level)["global"])
            if overall > 0:
                # Those after it need as much of the overall window or more: none can go.
                delay = min(delay, overall)
                break
            try:
                wait = self.try_acquire(waiter.chat_id, waiter.level, waiter.go)
            except UnwantedError as unwanted:
                self._waiters.remove(waiter)
                waiter.future.set_exception(unwanted)
                continue
            if wait == 0:
                self._waiters.remove(waiter)
                waiter.future.set_result("")
            else:
                delay = min(delay, wait)
        return delay

    async def _grant_shared(self, shared: SharedBudget) -> float:
        """Let through the waiters the shared budget allows, best first; the delay to the next."""
        # One ask for all: waiters polling Redis each on its own cost CPU and missed slots, and
        # held this replica's own limits meanwhile (its results queued behind its edits).
        self._waiters = [w for w in self._waiters if not w.future.done()]
        self._waiters.sort(key=lambda w: (w.rank, w.seq))
        asking = self._waiters[:ASKED_AT_ONCE]
        if not asking:
            return math.inf
        answer = await shared.take([(w.seq, w.chat_id, self._reserves(w.level)) for w in asking])
        if answer is None:  # Redis is out of reach: this replica's own limits meanwhile
            return self._grant()
        requests, delay = answer
        now = self._clock()
        for waiter, request in zip(asking, requests, strict=True):
            if not request:
                continue
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.future.done() or (waiter.go is not None and not waiter.go()):
                # Given up on while Redis answered, or no longer worth sending when its slot
                # came: it never counted.
                await shared.give_back(waiter.chat_id, request)
                if not waiter.future.done():
                    waiter.future.set_exception(UnwantedError())
                continue
            for limit, _scope in self._limits(waiter.chat_id, now):
                limit.take()
            waiter.future.set_result(request)
        return delay

    async def _pause(self, delay: float) -> None:
        # An answer (`release`) or a newcomer for a free chat wakes us before the delay is up;
        # the 1 s cap only bounds a wait on requests in flight that never report back.
        delay = min(delay, 1.0)
        if self._sleep is not None:
            await self._sleep(delay)
            return
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
    go: Callable[[], bool] | None = None
    # Set to its id in the replicas' shared budget ("" when let through by the local limits).
    future: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
