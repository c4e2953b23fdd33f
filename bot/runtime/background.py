"""Background work that shutdown can wait for: webhook updates, submissions from the queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """A set of running tasks, each logged if it fails."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run work in the background, tracked so shutdown can wait for it."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Background job failed", exc_info=task.exception())

    async def drain(self, grace: float) -> None:
        """Wait for the work to finish, then cancel what is left."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def every(
    seconds: float,
    work: Callable[[], Awaitable[object]],
    *,
    survives: tuple[type[BaseException], ...],
    first: bool = False,
) -> None:
    """Do `work` every `seconds` (at once too, if `first`) until cancelled.

    A failure of a kind in `survives` (the database or Redis out of reach for a while) is
    logged and the next round tries again: a loop that died on one blip would stop renewing
    claims or pruning for good while the bot looked healthy.
    """
    if not first:
        await asyncio.sleep(seconds)
    while True:
        try:
            await work()
        except survives as error:
            log.warning("%s failed (%s); trying again in %.0fs", _name(work), error, seconds)
        await asyncio.sleep(seconds)


def _name(work: Callable[[], Awaitable[object]]) -> str:
    return getattr(work, "__qualname__", None) or repr(work)
