"""Asks the API about tasks in flight: the only source of updates without PUBLIC_URL, and a
watchdog for quiet webhooks with it. Updates go through `Jobs.handle_update` like webhooks.

Tasks that stop changing are asked less and less often, drawing: running tasks are asked often.
All requests share one budget (`max_rate` per second), so a thousand queued tasks cost no more
than a handful. A task that has not changed for `stuck_after` seconds is given up on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.jobs.service import Jobs
from bot.jobs.values import Failure
from bot.runtime.clock import Clock, SystemClock
from bot.telegram.rate_windows import Bucket
from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.models import TaskStatus
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
# A failed delivery (Telegram down, image host down) is tried again this often, and one a
# dead replica left (its claim expired) is taken over.
REDELIVER_SECONDS = 5.0
CONCURRENT_REQUESTS = 8
# After the API refused our key, ask again only this rarely (each ask is refused too).
KEY_REJECTED_PAUSE = 60.0
# 429 without a Retry-After: pause all polling this long, doubling up to the cap.
BUSY_PAUSE = 2.0
BUSY_PAUSE_MAX = 60.0

KeyRejectedHook = Callable[[UserAPIError], Awaitable[None]]


class StatusPoller:
    """Polls `GET /status` for each task in flight, within a request budget."""

    def __init__(
        self,
        *,
        repo: TaskRepo,
        client: UserAPIClient,
        jobs: Jobs,
        interval: float,
        max_interval: float,
        quiet_after: float | None,
        max_rate: float = 20.0,
        stuck_after: float | None = None,
        on_key_rejected: KeyRejectedHook | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._repo = repo
        self._client = client
        self._jobs = jobs
        self._interval = interval
        self._max_interval = max_interval
        # With webhooks, a task is polled only after this long without any update.
        self._quiet_after = quiet_after
        self._stuck_after = stuck_after
        self._on_key_rejected = on_key_rejected
        self._budget = Bucket(
            max_rate, max(1.0, max_rate), max(1.0, max_rate), self._clock.monotonic()
        )
        self._due: dict[int, float] = {}
        self._delay: dict[int, float] = {}
        # (status, progress) last seen per task and since when (wall clock, like updated_at).
        self._seen: dict[int, tuple[str, int, float]] = {}
        # Asked about at the first chance, quiet or not (after a start, webhooks were lost).
        self._forced: set[int] = set()
        self._paused_until = 0.0
        self._busy_pause = BUSY_PAUSE
        self._semaphore = asyncio.Semaphore(CONCURRENT_REQUESTS)
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        """Poll until `stop()`."""
        last_redelivery = self._clock.monotonic()
        # Webhooks sent while the bot was down are lost: ask about every task in flight now
        # (within the budget) rather than after the watchdog's quiet period.
        everything = True
        while not self._stopped.is_set():
            try:
                await self.tick(everything=everything)
                everything = False
                if self._clock.monotonic() - last_redelivery > REDELIVER_SECONDS:
                    last_redelivery = self._clock.monotonic()
                    await self._take_over()
            except Exception:
                # One bad sweep (a database hiccup, a bug) must not end polling for good:
                # every task in flight would then wait forever for its result.
                log.exception("A status sweep failed; the next one follows")
            try:
                await asyncio.wait_for(self._stopped.wait(), TICK_SECONDS)
            except TimeoutError:
                continue

    async def _take_over(self) -> None:
        """Deliver what waits; fail submissions whose replica died mid-way (claims expired)."""
        for orphan in await self._repo.orphans(alone=False):
            await self._jobs.give_up(orphan, Failure.RESTARTED)
        await self._jobs.deliver_pending()

    def stop(self) -> None:
        """Ask the loop to end after the current tick."""
        self._stopped.set()

    async def tick(self, *, everything: bool = False) -> None:
        """Poll the tasks that are due now (every task in flight is due, with `everything`)."""
        now = self._clock.monotonic()
        records = await self._repo.in_flight()
        alive = {record.id for record in records}
        for gone in self._due.keys() - alive:
            self._due.pop(gone, None)
            self._delay.pop(gone, None)
        for gone in self._seen.keys() - alive:
            self._seen.pop(gone, None)
        self._forced &= alive
        if self._jobs.webhooks is not None:
            self._jobs.webhooks.keep_only(r.hash for r in records if r.hash is not None)
        if everything:
            self._forced.update(alive)
        # Never judged before it was asked about (a restart), nor while the API can't be asked.
        stuck = [
            record
            for record in records
            if self._is_stuck(record)
            and record.id not in self._forced
            and now >= self._paused_until
        ]
        for record in stuck:
            log.warning("Task %d had no update for %.0fs; giving up", record.id, self._stuck_after)
            await self._jobs.give_up(record, Failure.STUCK)
        if now < self._paused_until:
            return
        stuck_ids = {record.id for record in stuck}
        due = sorted(
            (r for r in records if r.id not in stuck_ids and self._is_due(r, now)),
            # Within the budget: after a start everything once, then tasks never asked about,
            # newest first (a job just started may fail or finish at once while its requester
            # watches; after a burst, the older ones still get their turn within a sweep),
            # then drawing ones (they finish soon), then the longest overdue.
            key=lambda r: (
                r.id not in self._forced,
                r.id in self._delay,
                r.status != TaskStatus.PROGRESS,
                self._due[r.id] if r.id in self._delay else -self._due.get(r.id, now),
            ),
        )
        allowed = []
        for record in due:
            if self._budget.wait(now, 1.0) > 0:
                break  # the rest stay due and go first next tick
            self._budget.take()
            allowed.append(record)
        if allowed:
            await asyncio.gather(*(self._poll(record) for record in allowed))

    def _is_stuck(self, record: TaskRecord) -> bool:
        """Whether the task's state has not moved for `stuck_after` seconds."""
        now = self._clock.time()
        state = (record.status, record.progress)
        seen = self._seen.get(record.id)
        if seen is None or seen[:2] != state:
            # First sight (or after a restart): count from the last stored change.
            since = record.updated_at if seen is None else now
            self._seen[record.id] = (*state, since)
            seen = self._seen[record.id]
        return self._stuck_after is not None and now - seen[2] > self._stuck_after

    def _is_due(self, record: TaskRecord, now: float) -> bool:
        if record.id in self._forced:
            return True
        if (
            self._quiet_after is not None
            and not self._webhooks_missing(record)
            and self._clock.time() - record.updated_at < self._quiet_after
        ):
            return False
        # A task seen for the first time (new, or found after a restart) is asked at once.
        return self._due.setdefault(record.id, now) <= now

    def _webhooks_missing(self, record: TaskRecord) -> bool:
        """Whether webhooks failed to tell us about this task (so it is polled as without)."""
        watch = self._jobs.webhooks
        return (
            watch is not None
            and record.hash is not None
            and watch.needs_polling(record.hash, record.created_at)
        )

    async def _poll(self, record: TaskRecord) -> None:
        assert record.hash is not None
        # After a start every task is asked once: what changed then was missed while we were
        # down, which says nothing about webhooks.
        after_start = record.id in self._forced
        self._forced.discard(record.id)
        running = record.status == TaskStatus.PROGRESS
        async with self._semaphore:
            try:
                task = await self._client.status(hash=record.hash)
            except UserAPIError as error:
                changed = False
                await self._failed(record, error)
            else:
                self._busy_pause = BUSY_PAUSE
                changed = await self._jobs.handle_update(task)
                running = task.status is TaskStatus.PROGRESS
                watch = self._jobs.webhooks
                moved_on = task.status in (TaskStatus.PROGRESS, TaskStatus.DONE)
                if changed and moved_on and watch is not None and not after_start:
                    await watch.missed(record.hash)
                if not changed and self._quiet_after is not None:
                    await self._repo.touch(record.id)
        if changed:
            delay = self._interval
        else:
            # A drawing task ends soon: keep asking at the base pace; a queued one can wait.
            ceiling = self._interval if running else self._max_interval
            delay = min(ceiling, self._delay.get(record.id, self._interval) * 1.5)
        self._delay[record.id] = delay
        self._due[record.id] = self._clock.monotonic() + delay

    async def _failed(self, record: TaskRecord, error: UserAPIError) -> None:
        """React to a failed status request: back off on 429, raise the alarm on a bad key."""
        log.warning("Status of task %d unavailable: %s", record.id, error.message)
        if error.status == 429:
            pause = error.retry_after or self._busy_pause
            self._busy_pause = min(BUSY_PAUSE_MAX, self._busy_pause * 2)
            self._paused_until = max(self._paused_until, self._clock.monotonic() + pause)
        elif error.is_auth_error:
            first = self._paused_until < self._clock.monotonic()
            self._paused_until = self._clock.monotonic() + KEY_REJECTED_PAUSE
            if first:
                log.error("userapi rejected the API key (HTTP %s); pausing polling", error.status)
                if self._on_key_rejected is not None:
                    await self._on_key_rejected(error)
