"""Webhook updates on their way in: coalesced per task, and parked when they come too early.

A burst of progress webhooks for one task need not each reach the database and the chat: while
one is handled, only the most advanced of those arriving meanwhile waits, and progress within
one status is handled at most once per progress edit interval per task (a new status never
waits). And the API can call back before its answer to our POST (with the hash) has been
stored: such an update is parked briefly and handled once the hash is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from bot.userapi import Task, TaskStatus
from storage.tasks import status_rank

log = logging.getLogger(__name__)
V = TypeVar("V")

# Webhooks for hashes we don't know yet are kept this long, and at most this many.
EARLY_UPDATE_SECONDS = 30.0
EARLY_UPDATE_LIMIT = 1000
# Progress within one status is handled at most this often per task (by default; the bot passes
# its PROGRESS_EDIT_INTERVAL), the freshest of what came meanwhile: the chat sees an edit that
# often at most, so a tick handled in between would be a database write nobody sees. Bursts of
# ticks (Midjourney sends many) no longer reach the database one by one; a new status (the
# result above all) is handled at once.
PROGRESS_GAP = 3.0


def advance(task: Task) -> tuple[int, int]:
    """How far along an update says its task is (a status-less one says nothing)."""
    if task.status is None:
        return (-1, 0)
    return (status_rank(task.status.value), task.progress or 0)


class WebhookInbox:
    """Feeds webhook updates to `handle`, one at a time per task, the most advanced first."""

    def __init__(
        self,
        handle: Callable[[Task], Awaitable[bool]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        progress_gap: float = PROGRESS_GAP,
    ) -> None:
        self._handle = handle
        self._spawn = spawn
        self._gap = progress_gap
        self._waiting: dict[str, Task] = {}
        self._early: OrderedDict[str, tuple[float, Task]] = OrderedDict()
        # How far the latest handled update of each recent task went (to tell duplicates).
        self._handled: OrderedDict[str, tuple[int, int]] = OrderedDict()
        # When each recent task's progress was last handled, and who waits to handle more.
        self._progress_at: OrderedDict[str, float] = OrderedDict()
        self._news: dict[str, asyncio.Event] = {}

    def offer(self, task: Task) -> bool:
        """Handle a webhook's update in the background; False when it tells nothing new.

        "Nothing new": no further along than an update waiting for the same task or the last
        one handled. It is handled all the same (the database decides what changes); the
        answer only tells the metrics a duplicate from news.
        """
        waiting = self._waiting.get(task.hash)
        known = max(
            advance(waiting) if waiting else (-2, 0), self._handled.get(task.hash, (-2, 0))
        )
        if waiting is None or advance(task) >= advance(waiting):
            self._waiting[task.hash] = task
            if waiting is not None and advance(task)[0] > advance(waiting)[0]:
                self._wake(task.hash)  # a new status does not wait out the progress gap
        if waiting is None:
            self._spawn(self._drain(task.hash))
        return advance(task) > known

    async def _drain(self, task_hash: str) -> None:
        while (task := self._waiting.get(task_hash)) is not None:
            pause = self._gap_left(task)
            if pause > 0:
                await self._hold(task_hash, pause)
                continue  # then the freshest update that came meanwhile
            if task.status is TaskStatus.PROGRESS:
                _remember(self._progress_at, task_hash, time.monotonic())
            _remember(
                self._handled, task_hash, max(advance(task), self._handled.get(task_hash, (-2, 0)))
            )
            try:
                await self._handle(task)
            except Exception:
                # Logged and passed over, so the updates queued behind it are not stranded.
                log.exception("Update of task %s failed", task_hash)
            finally:
                # Removed only now, so that updates arriving meanwhile queue behind this one.
                if self._waiting.get(task_hash) is task:
                    del self._waiting[task_hash]

    def _gap_left(self, task: Task) -> float:
        """Seconds this progress update must wait for its task's gap (0: handle it now)."""
        last = self._progress_at.get(task.hash)
        if task.status is not TaskStatus.PROGRESS or last is None:
            return 0.0
        return last + self._gap - time.monotonic()

    async def _hold(self, task_hash: str, seconds: float) -> None:
        """Wait `seconds`, or less if a new status for the task comes meanwhile."""
        news = self._news[task_hash] = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), seconds)
        finally:
            self._news.pop(task_hash, None)

    def _wake(self, task_hash: str) -> None:
        news = self._news.get(task_hash)
        if news is not None:
            news.set()

    def park(self, task: Task) -> None:
        """Keep an update for a hash not stored yet (bounded in time and count)."""
        now = time.monotonic()
        self._early[task.hash] = (now, task)
        while self._early and (
            len(self._early) > EARLY_UPDATE_LIMIT
            or next(iter(self._early.values()))[0] < now - EARLY_UPDATE_SECONDS
        ):
            self._early.popitem(last=False)

    def unpark(self, task_hash: str) -> Task | None:
        """The update parked for a hash now stored, if any."""
        early = self._early.pop(task_hash, None)
        return None if early is None else early[1]


def _remember(recent: OrderedDict[str, V], key: str, value: V) -> None:
    """Note a value for a task among the most recent EARLY_UPDATE_LIMIT ones."""
    recent[key] = value
    recent.move_to_end(key)
    if len(recent) > EARLY_UPDATE_LIMIT:
        recent.popitem(last=False)
