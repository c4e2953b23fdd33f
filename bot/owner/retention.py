"""Runs pruning (storage/retention.py) at start and then once a day."""

from __future__ import annotations

import logging
import time

import aiosqlite

from bot.runtime.background import every
from storage.database import STORAGE_ERRORS, Database
from storage.retention import prune

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


async def prune_old(db: Database, days: int) -> None:
    """Prune once: what is older than `days` days and no longer of use."""
    try:
        pruned = await prune(db, time.time() - days * DAY)
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


async def prune_daily(db: Database, days: int, interval: float = DAY) -> None:
    """Prune now, then every `interval` seconds, until cancelled."""
    await every(interval, lambda: prune_old(db, days), survives=STORAGE_ERRORS, first=True)
