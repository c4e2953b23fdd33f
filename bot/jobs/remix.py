"""Whether an account runs in remix mode (then V, Vary, 🔄 and Pan ask for a prompt first)."""

from __future__ import annotations

import logging
import time

from bot.jobs.actions import Action
from bot.userapi import UserAPIClient, UserAPIError
from storage.tasks import TaskRecord

log = logging.getLogger(__name__)

# How long an account's remix mode is trusted before asking /discord/info again.
REMIX_CACHE_SECONDS = 60.0


class RemixCache:
    """Remix mode per account, read from /discord/info and kept briefly."""

    def __init__(self, client: UserAPIClient) -> None:
        self._client = client
        self._known: dict[str, tuple[float, bool]] = {}

    async def enabled(self, account_hash: str | None) -> bool:
        """Whether the account runs in remix mode (off when unknown)."""
        if not account_hash:
            return False
        cached = self._known.get(account_hash)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            account = await self._client.discord_info(account_hash=account_hash)
        except UserAPIError as error:
            log.warning("Can't read remix mode of an account: %s", error.message)
            return False
        enabled = bool(account.is_remix)
        self._known[account_hash] = (time.monotonic() + REMIX_CACHE_SECONDS, enabled)
        return enabled

    async def needs_prompt(self, parent: TaskRecord, action: Action) -> bool:
        """Whether the user must type a prompt before this action can run."""
        if action.always_needs_prompt:
            return True
        return action.takes_remix_prompt and await self.enabled(parent.account_hash)
