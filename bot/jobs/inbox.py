"""Webhook updates on their way in: coalesced per task, and parked when they come too early.

A burst of progress webhooks for one task need not each reach the database and the chat: while
one is handled, only the most advanced of those arriving meanwhile waits. And the API can call
back before its answer to our POST (with the hash) has been stored: such an update is parked
briefly and handled once the hash is known.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.userapi import Task
from storage.tasks import status_rank

log = logging.getLogger(__name__)

# Webhooks for hashes we don't know yet are kept this long, and at most this many.
EARLY_UPDATE_SECONDS = 30.0
EARLY_UPDATE_LIMIT = 1000


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
    ) -> None:
        self._handle = handle
        self._spawn = spawn
        self._waiting: dict[str, Task] = {}
        self._early: OrderedDict[str, tuple[float, Task]] = OrderedDict()
        # How far the latest handled update of each recent task went (to tell duplicates).
        self._handled: OrderedDict[str, tuple[int, int]] = OrderedDict()

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
        if waiting is None:
            self._spawn(self._drain(task.hash))
        return advance(task) > known

    async def _drain(self, task_hash: str) -> None:
        while (task := self._waiting.get(task_hash)) is not None:
            self._handled[task_hash] = max(advance(task), self._handled.get(task_hash, (-2, 0)))
            self._handled.move_to_end(task_hash)
            if len(self._handled) > EARLY_UPDATE_LIMIT:
                self._handled.popitem(last=False)
            try:
                await self._handle(task)
            except Exception:
                # Logged and passed over, so the updates queued behind it are not stranded.
                log.exception("Update of task %s failed", task_hash)
            finally:
                # Removed only now, so that updates arriving meanwhile queue behind this one.
                if self._waiting.get(task_hash) is task:
                    del self._waiting[task_hash]

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
