"""Runs pruning (storage/retention.py, handled Telegram updates) at start and once a day."""

from __future__ import annotations

import logging
import time

import aiosqlite

from bot.runtime.background import every
from storage.database import STORAGE_ERRORS, Database
from storage.replicas.claims import HANDLED_KEPT_SECONDS, UpdateInbox
from storage.retention import prune

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


async def prune_old(db: Database, days: int) -> None:
    """Prune once: what is older than `days` days and no longer of use."""
    try:
        pruned = await prune(db, time.time() - days * DAY)
        # Not the retention's days: a resend comes within one, and bodies are dropped anyway.
        forgotten = await UpdateInbox(db).forget_handled(time.time() - HANDLED_KEPT_SECONDS)
    except aiosqlite.Error as error:
        # A busy or odd database delays pruning to the next run; the bot works on.
        log.warning("Pruning old records failed, trying again later: %s", error)
        return
    if pruned.total:
        log.info(
            "Pruned records older than %d days: %d tasks, %d prompt requests, %d uploads, "
            "%d waiting states",
            days,
            pruned.tasks,
            pruned.prompt_requests,
            pruned.uploads,
            pruned.waiting_states,
        )
    if forgotten:
        log.info("Forgot %d Telegram updates handled over two days ago", forgotten)


async def prune_daily(db: Database, days: int, interval: float = DAY) -> None:
    """Prune now, then every `interval` seconds, until cancelled."""
    await every(interval, lambda: prune_old(db, days), survives=STORAGE_ERRORS, first=True)
