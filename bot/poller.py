"""Asks the API about tasks in flight: the only source of updates without PUBLIC_URL, and a
watchdog for quiet webhooks with it. Updates go through `Jobs.handle_update` like webhooks."""

from __future__ import annotations

import asyncio
import logging
import time

from bot.jobs import Jobs
from bot.userapi import UserAPIClient, UserAPIError
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
# A failed delivery (Telegram down, image host down) is tried again this often.
REDELIVER_SECONDS = 15.0
CONCURRENT_REQUESTS = 8


class StatusPoller:
    """Polls `GET /status` for each task in flight, backing off while a task does not change."""

    def __init__(
        self,
        *,
        repo: TaskRepo,
        client: UserAPIClient,
        jobs: Jobs,
        interval: float,
        max_interval: float,
        quiet_after: float | None,
    ) -> None:
        self._repo = repo
        self._client = client
        self._jobs = jobs
        self._interval = interval
        self._max_interval = max_interval
        # With webhooks, a task is polled only after this long without any update.
        self._quiet_after = quiet_after
        self._due: dict[int, float] = {}
        self._delay: dict[int, float] = {}
        self._semaphore = asyncio.Semaphore(CONCURRENT_REQUESTS)
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        """Poll until `stop()`."""
        last_redelivery = time.monotonic()
        # Webhooks sent while the bot was down are lost: ask about every task in flight now
        # rather than after the watchdog's quiet period.
        await self.tick(everything=True)
        while not self._stopped.is_set():
            await self.tick()
            if time.monotonic() - last_redelivery > REDELIVER_SECONDS:
                last_redelivery = time.monotonic()
                await self._jobs.deliver_pending()
            try:
                await asyncio.wait_for(self._stopped.wait(), TICK_SECONDS)
            except TimeoutError:
                continue

    def stop(self) -> None:
        """Ask the loop to end after the current tick."""
        self._stopped.set()

    async def tick(self, *, everything: bool = False) -> None:
        """Poll every task that is due now (or every task in flight, with `everything`)."""
        now = time.monotonic()
        records = await self._repo.in_flight()
        alive = {record.id for record in records}
        for gone in self._due.keys() - alive:
            self._due.pop(gone, None)
            self._delay.pop(gone, None)
        due = [record for record in records if everything or self._is_due(record, now)]
        if due:
            await asyncio.gather(*(self._poll(record) for record in due))

    def _is_due(self, record: TaskRecord, now: float) -> bool:
        if self._quiet_after is not None and time.time() - record.updated_at < self._quiet_after:
            return False
        # A task seen for the first time (new, or found after a restart) is asked at once.
        return self._due.setdefault(record.id, now) <= now

    async def _poll(self, record: TaskRecord) -> None:
        assert record.hash is not None
        async with self._semaphore:
            try:
                task = await self._client.status(hash=record.hash)
            except UserAPIError as error:
                log.warning("Status of task %d unavailable: %s", record.id, error.message)
                changed = False
            else:
                changed = await self._jobs.handle_update(task)
                if not changed and self._quiet_after is not None:
                    await self._repo.touch(record.id)
        delay = (
            self._interval
            if changed
            else min(self._max_interval, self._delay.get(record.id, self._interval) * 1.5)
        )
        self._delay[record.id] = delay
        self._due[record.id] = time.monotonic() + delay
