"""Notices when userapi's webhooks stop reaching the bot, so that polling carries the results.

With PUBLIC_URL set, tasks are polled only as a watchdog (after WEBHOOK_QUIET_AFTER). When
webhooks never arrive (a wrong proxy, a firewall), that would make every result a minute late.
So a task that had no webhook within `grace` seconds of being sent is polled at the normal
cadence, and when such a poll finds that the task moved on without a webhook telling us, the
owner is alerted once, and every task is polled until a webhook arrives again.

The alert needs evidence, not silence: a task may sit in Midjourney's queue for minutes
without any status change, hence without any webhook, so silence alone only starts polling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)

# Tasks remembered at most: hashes of finished tasks are dropped by `keep_only`.
MAX_TRACKED = 100_000


class WebhookWatch:
    """Tracks which tasks were heard of by webhook, and whether webhooks work at all."""

    def __init__(
        self,
        *,
        grace: float,
        on_broken: Callable[[], Awaitable[None]] | None = None,
        on_restored: Callable[[], None] | None = None,
    ) -> None:
        self._grace = grace
        self._on_broken = on_broken
        self._on_restored = on_restored
        self._sent: dict[str, float] = {}
        self._heard: set[str] = set()
        self.broken = False

    def sent(self, task_hash: str) -> None:
        """The API accepted a task: its webhooks should follow."""
        if len(self._sent) < MAX_TRACKED:
            self._sent[task_hash] = time.time()

    def heard(self, task_hash: str) -> None:
        """A webhook arrived for a task: webhooks reach us (again)."""
        if len(self._heard) < MAX_TRACKED:
            self._heard.add(task_hash)
        if self.broken:
            self.broken = False
            log.info("userapi webhooks arrive again; polling goes back to watchdog pace")
            if self._on_restored is not None:
                self._on_restored()

    def needs_polling(self, task_hash: str, created_at: float) -> bool:
        """Whether a task must be polled at the normal cadence rather than as a watchdog."""
        if task_hash in self._heard:
            return False
        if self.broken:
            return True
        sent_at = self._sent.get(task_hash, created_at)
        return time.time() - sent_at >= self._grace

    async def missed(self, task_hash: str) -> None:
        """Polling saw a task move on (progress or done) that no webhook reported."""
        if task_hash in self._heard or self.broken:
            return
        self.broken = True
        log.warning("A task moved on without a webhook: userapi webhooks don't reach the bot")
        if self._on_broken is not None:
            await self._on_broken()

    def keep_only(self, hashes: Iterable[str]) -> None:
        """Forget tasks that are no longer in flight."""
        alive = set(hashes)
        self._heard &= alive
        for gone in self._sent.keys() - alive:
            del self._sent[gone]
