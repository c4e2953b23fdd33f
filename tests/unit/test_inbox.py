"""Webhook updates coalesced per task: progress bursts thinned, a new status never held."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from bot.jobs.inbox import WebhookInbox
from bot.userapi import Task


def update(status: str, progress: int | None = None) -> Task:
    return Task.model_validate({"hash": "h-1", "status": status, "progress": progress})


class Recorder:
    """The inbox's `handle` and `spawn`, noting what was handled and when."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, int | None]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def handle(self, task: Task) -> bool:
        assert task.status is not None
        self.handled.append((task.status.value, task.progress))
        return True

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro))

    async def settle(self) -> None:
        await asyncio.gather(*self.tasks)


async def test_a_burst_of_progress_reaches_the_handler_thinned_to_the_freshest() -> None:
    seen = Recorder()
    inbox = WebhookInbox(seen.handle, seen.spawn, progress_gap=0.3)
    for progress in (10, 20, 30, 40):
        inbox.offer(update("progress", progress))
        await asyncio.sleep(0)
    await seen.settle()
    # The first at once; of those within the gap, only the freshest, once the gap is over.
    assert seen.handled == [("progress", 10), ("progress", 40)]


async def test_a_result_does_not_wait_for_the_progress_gap() -> None:
    seen = Recorder()
    inbox = WebhookInbox(seen.handle, seen.spawn, progress_gap=30.0)
    inbox.offer(update("progress", 10))
    await asyncio.sleep(0.01)
    inbox.offer(update("progress", 50))  # held: within the gap
    await asyncio.sleep(0.01)
    inbox.offer(update("done", 100))
    await asyncio.wait_for(seen.settle(), 5)  # far sooner than the 30 s gap
    assert seen.handled == [("progress", 10), ("done", 100)]


async def test_repeats_are_told_from_news() -> None:
    seen = Recorder()
    inbox = WebhookInbox(seen.handle, seen.spawn)
    assert inbox.offer(update("waiting"))
    await seen.settle()
    assert not inbox.offer(update("waiting")), "the same state again is a duplicate"
    assert inbox.offer(update("progress", 5))
    await seen.settle()
