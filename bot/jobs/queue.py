"""The local job queue: slots at Midjourney, the jobs waiting for one, and their notices.

The queue itself lives in the tasks table (status `queued`, in id order); this module keeps
the in-memory view of it that decides who goes next, and refreshes the "number N in the queue"
messages in the background, never in the way of a result or of the next submission.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.telegram.rate_windows import Bucket
from storage.tasks import Cap, TaskRecord, TaskRepo

log = logging.getLogger(__name__)

# A waiting job's notice is edited at most this often, and only when its place changed.
NOTICE_MIN_GAP = 5.0
# Notice edits across all chats: a small share of Telegram's 30 messages a second.
NOTICE_RATE = 2.0
# After the queue moves, let more moves gather before editing anything.
NOTICE_SETTLE = 1.0


class Slots:
    """A cap on jobs at the API: one shared pool, or one per account when several are listed."""

    def __init__(self, limit: int, accounts: Sequence[str] = ()) -> None:
        self.limit = max(1, limit)
        listed = list(dict.fromkeys(accounts))
        # Midjourney's limit is per account; with one account (or none named) it is one pool.
        self.accounts = listed if len(listed) > 1 else []
        self.busy: dict[int, str | None] = {}

    def pool(self, account: str | None) -> str | None:
        if not self.accounts:
            return None
        return account or self.accounts[0]

    def load(self, account: str | None) -> int:
        """Jobs running in the pool of this account."""
        pool = self.pool(account)
        return sum(1 for busy in self.busy.values() if busy == pool)

    def pick(self, pinned: str | None) -> tuple[bool, str | None]:
        """Whether a job pinned to this account (None: any) may run now, and on which account."""
        if self.accounts and pinned is None:
            pinned = min(self.accounts, key=self.load)
        return self.load(pinned) < self.limit, pinned

    def take(self, task_id: int, account: str | None) -> None:
        """Count a job as running on an account."""
        self.busy[task_id] = self.pool(account)

    def sync(self, running: Sequence[tuple[int, str | None]], ended: set[int]) -> None:
        """Count what every replica runs (the database's view); forget jobs that ended."""
        for task_id in ended:
            self.busy.pop(task_id, None)
        for task_id, account in running:
            self.busy[task_id] = self.pool(account)

    def release(self, task_id: int) -> bool:
        """Free a job's slot; False when it held none."""
        return self.busy.pop(task_id, ...) is not ...

    @property
    def full(self) -> bool:
        """Whether no job of any account could start now."""
        pools: list[str | None] = [*self.accounts] or [None]
        return all(self.load(pool) >= self.limit for pool in pools)


class JobQueue:
    """Jobs waiting for a slot, oldest first; each may be pinned to an account."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        # Replicas: the database counts the slots of all of them at each submission.
        self.shared = False
        self._ids: list[int] = []
        self._pinned: dict[int, str | None] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def in_flight(self) -> dict[str, int]:
        """Jobs holding a slot, per account ("any" for the one pool of a single account)."""
        counts = dict.fromkeys(self.slots.accounts or ["any"], 0)
        counts.update(Counter(pool or "any" for pool in self.slots.busy.values()))
        return counts

    def __contains__(self, task_id: int) -> bool:
        return task_id in self._pinned

    def add(self, task_id: int, pinned: str | None) -> None:
        """Queue a job in id order (the order users asked in, across restarts too)."""
        if task_id in self._pinned:
            return
        bisect.insort(self._ids, task_id)
        self._pinned[task_id] = pinned

    def reload(self, running: Sequence[TaskRecord], waiting: Sequence[TaskRecord]) -> None:
        """Start over from the database: jobs running at the API hold slots, the rest wait."""
        self.slots.busy.clear()
        for record in running:
            self.slots.take(record.id, record.account_hash)
        for record in waiting:
            self.add(record.id, record.account_hash)

    async def sync(self, repo: TaskRepo) -> None:
        """Count the slots every replica's jobs hold, forget jobs that ended elsewhere, and
        take in the queued jobs of a replica that died."""
        for task_id, account in await repo.adopt_queued():
            self.add(task_id, account)
        running = await repo.running()
        known = {task_id for task_id, _ in running}
        ended = await repo.ended([task_id for task_id in self.slots.busy if task_id not in known])
        self.slots.sync(running, ended)

    def cap(self, account: str | None) -> Cap | None:
        """What a submission on this account must fit in, as the database counts it."""
        return Cap(self.slots.limit, self.slots.pool(account)) if self.shared else None

    def requeue(self, record: TaskRecord) -> bool:
        """A job granted here that the database found no slot for waits again (if queued)."""
        if record.status != "queued":
            return False
        # Its turn comes back with the next count of the slots (`sync`), not at once.
        self.slots.release(record.id)
        self.add(record.id, record.account_hash)
        return True

    def remove(self, task_id: int) -> bool:
        """Take a job out of the queue; False when it was not waiting."""
        if self._pinned.pop(task_id, ...) is ...:
            return False
        self._ids.pop(bisect.bisect_left(self._ids, task_id))
        return True

    def grant(self) -> list[tuple[int, str | None]]:
        """Give free slots to waiting jobs in order; the jobs that got one, with their account.

        A job pinned to a busy account does not hold up a later one that fits elsewhere.
        """
        granted: list[tuple[int, str | None]] = []
        for task_id in list(self._ids):
            if self.slots.full:
                break
            free, account = self.slots.pick(self._pinned[task_id])
            if free:
                self.slots.take(task_id, account)
                self.remove(task_id)
                granted.append((task_id, account))
        return granted

    def positions(self) -> dict[int, int]:
        """Every waiting job's place, 1 = next."""
        return {task_id: place for place, task_id in enumerate(self._ids, start=1)}

    def position(self, task_id: int) -> int:
        """A job's place (1 = next), 0 when it is not waiting."""
        index = bisect.bisect_left(self._ids, task_id)
        found = index < len(self._ids) and self._ids[index] == task_id
        return index + 1 if found else 0


class QueueView(Protocol):
    """Shows a job waiting for a slot: a message with its place, later its status message."""

    async def queued(self, task: TaskRecord, position: int) -> None:
        """Post the message saying the job waits, and where in the queue (1 = next)."""

    async def moved(self, task: TaskRecord, position: int, still: Callable[[], bool]) -> bool:
        """Show a new place; False when the message is gone (the user deleted it).

        `still()`, asked when the edit would go out, says whether the job is still there.
        """


class NoticeRefresher:
    """Keeps queue notices roughly current, in the background and within a small budget."""

    def __init__(self, queue: JobQueue, view: QueueView, repo: TaskRepo) -> None:
        self._queue = queue
        self._view = view
        self._repo = repo
        self._shown: dict[int, int] = {}
        self._edited_at: dict[int, float] = {}
        # Jobs whose notice the user deleted: never edited again.
        self._gone: set[int] = set()
        self._budget = Bucket(NOTICE_RATE, NOTICE_RATE, NOTICE_RATE, time.monotonic())
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self.edits = 0

    def shown(self, task_id: int, position: int) -> None:
        """Note the place a job's first notice showed."""
        self._shown[task_id] = position
        self._edited_at[task_id] = time.monotonic()

    def poke(self) -> None:
        """The queue moved: refresh the notices soon (one runner at a time)."""
        # After close, a job ending while the bot drains must not start another runner.
        if self._closed:
            return
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(NOTICE_SETTLE)
            positions = self._queue.positions()
            for left in self._shown.keys() - positions.keys():
                self._shown.pop(left, None)
                self._edited_at.pop(left, None)
            self._gone &= positions.keys()
            stale = [
                (task_id, place)
                for task_id, place in positions.items()
                if self._shown.get(task_id) != place and task_id not in self._gone
            ]
            if not stale:
                return
            now = time.monotonic()
            ready = [
                item for item in stale if self._edited_at.get(item[0], 0.0) + NOTICE_MIN_GAP <= now
            ]
            for task_id, _place in ready:
                await self._refresh(task_id)

    async def _refresh(self, task_id: int) -> None:
        wait = self._budget.wait(time.monotonic(), 1.0)
        if wait > 0:  # one runner: nobody else spends the budget meanwhile
            await asyncio.sleep(wait)
        # Read again after the wait: the job may have left the queue or moved once more.
        place = self._queue.position(task_id)
        if place == 0 or self._shown.get(task_id) == place:
            return
        task = await self._repo.get(task_id)
        if task is None or task.status != "queued":
            return
        self._budget.take()
        self._edited_at[task_id] = time.monotonic()
        self._shown[task_id] = place
        self.edits += 1
        if not await self._view.moved(task, place, lambda: self._queue.position(task_id) == place):
            self._gone.add(task_id)

    async def close(self) -> None:
        """Stop refreshing (shutdown), for good."""
        self._closed = True
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
