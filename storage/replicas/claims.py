"""Claims: which process does a piece of work (a task, an update), so replicas share it safely.

A claim has an owner (a process) and an expiry; the owner renews its claims while it lives,
and a claim its owner stopped renewing (the process died) is taken over by another.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

from storage.database import Database

# A claim (a submission or a delivery under way) holds this long unless renewed; a process
# renews its claims every CLAIM_RENEW seconds, so a dead one's are taken over within this.
CLAIM_SECONDS = 20.0
CLAIM_RENEW = 5.0
# A handled Telegram update is remembered this long, so a resend is not handled twice:
# Telegram stops resending an update within a day (it keeps undelivered ones for 24 hours).
HANDLED_KEPT_SECONDS = 2 * 24 * 3600.0
# This process, as the owner of its claims.
PROCESS = f"{os.getpid()}-{secrets.token_hex(4)}"


class TaskClaims:
    """The tasks table as work shared by processes: claims, and what runs anywhere."""

    def __init__(self, db: Database, owner: str = PROCESS) -> None:
        self._db = db
        self.owner = owner

    def _claim(self) -> dict[str, Any]:
        now = time.time()
        return {"me": self.owner, "now": now, "until": now + CLAIM_SECONDS}

    async def claim_delivery(self, task_id: int) -> bool:
        """Take the right to deliver a finished task; only one caller ever gets it."""
        # A claim that expired (its process died mid-way) is taken again: the photo may then
        # go out twice, which we choose over losing it; the window is one HTTP round trip.
        changed = await self._db.execute(
            """UPDATE tasks SET delivery = 'sending', claimed_by = :me, claim_expires = :until
               WHERE id = :id AND (delivery = 'pending' OR (delivery = 'sending'
                     AND (claim_expires IS NULL OR claim_expires < :now)))""",
            {**self._claim(), "id": task_id},
        )
        return changed == 1

    async def release_claims(self) -> int:
        """Alone after a restart: every claim left is a dead process's; hand them back now."""
        return await self._db.execute(
            """UPDATE tasks SET delivery = 'pending', claimed_by = NULL, claim_expires = NULL
               WHERE delivery = 'sending'"""
        )

    async def renew_claims(self) -> int:
        """Keep this process's claims alive (it is alive); how many it holds."""
        async with self._db.transaction() as statements:
            held = await statements.execute(
                "UPDATE tasks SET claim_expires = :until WHERE claimed_by = :me", self._claim()
            )
            return held + await statements.execute(
                """UPDATE telegram_updates SET claim_expires = :until
                   WHERE claimed_by = :me AND handled_at IS NULL""",
                self._claim(),
            )

    async def adopt_queued(self) -> list[tuple[int, str | None]]:
        """Queued jobs whose replica died (claim expired): now ours to submit, oldest first."""
        rows = await self._db.fetch_all(
            """SELECT id FROM tasks WHERE status = 'queued'
                 AND (claim_expires IS NULL OR claim_expires < :now) ORDER BY id""",
            {"now": time.time()},
        )
        adopted = []
        for row in rows:
            # One at a time, conditionally: two replicas adopting at once split them.
            async with self._db.transaction() as statements:
                taken = await statements.fetch_one(
                    """UPDATE tasks SET claimed_by = :me, claim_expires = :until
                       WHERE id = :id AND status = 'queued'
                         AND (claim_expires IS NULL OR claim_expires < :now)
                       RETURNING id, account_hash""",
                    {**self._claim(), "id": row["id"]},
                )
            if taken is not None:
                adopted.append((int(taken["id"]), taken["account_hash"]))
        return adopted

    async def hand_back(self) -> int:
        """Stopping: give this process's unfinished deliveries back at once, for others."""
        return await self._db.execute(
            """UPDATE tasks SET delivery = 'pending', claimed_by = NULL, claim_expires = NULL
               WHERE claimed_by = :me AND delivery = 'sending'""",
            {"me": self.owner},
        )

    async def unclaim(self, task_id: int) -> None:
        """Give a delivery that failed back to the queue for a later attempt."""
        await self._db.execute(
            """UPDATE tasks SET delivery = 'pending', claimed_by = NULL, claim_expires = NULL
               WHERE id = :id AND delivery = 'sending' AND claimed_by = :me""",
            {"id": task_id, "me": self.owner},
        )

    async def running(self) -> list[tuple[int, str | None]]:
        """Jobs at the API or being sent, by any replica: their ids and accounts."""
        rows = await self._db.fetch_all(
            """SELECT id, account_hash FROM tasks
               WHERE status_rank < 4 AND status <> 'queued'"""
        )
        return [(int(row["id"]), row["account_hash"]) for row in rows]

    async def ended(self, task_ids: list[int]) -> set[int]:
        """Which of these tasks have finished."""
        if not task_ids:
            return set()
        rows = await self._db.fetch_all(
            "SELECT id FROM tasks WHERE id IN :ids AND status_rank >= 4", {"ids": task_ids}
        )
        return {int(row["id"]) for row in rows}


class UpdateInbox:
    """Telegram updates stored before Telegram hears they arrived, until handled, then marked.

    A handled update stays as a tombstone (`handled_at`, its body dropped) so that Telegram
    resending it (the 200 was lost on the way back) is told apart from news; Telegram gives
    up on an update within a day, so tombstones are forgotten after HANDLED_KEPT_SECONDS.
    """

    def __init__(self, db: Database, owner: str = PROCESS) -> None:
        self._db = db
        self.owner = owner

    async def add(self, update_id: int, body: str) -> bool:
        """Keep an update, claimed by us; False when it was kept already (Telegram resent it)."""
        now = time.time()
        changed = await self._db.execute(
            """INSERT INTO telegram_updates (update_id, body, claimed_by, claim_expires,
                   received_at)
               VALUES (:id, :body, :me, :until, :now) ON CONFLICT DO NOTHING""",
            {
                "id": update_id,
                "body": body,
                "me": self.owner,
                "until": now + CLAIM_SECONDS,
                "now": now,
            },
        )
        return changed == 1

    async def done(self, update_id: int) -> None:
        """The update was handled: keep only the fact, so a resend of it is a duplicate."""
        await self._db.execute(
            """UPDATE telegram_updates
               SET handled_at = :now, body = '', claimed_by = NULL, claim_expires = NULL
               WHERE update_id = :id""",
            {"id": update_id, "now": time.time()},
        )

    async def hand_back(self, update_id: int) -> None:
        """Not handled after all (cut off by a stop): the leader's next sweep takes it."""
        await self._db.execute(
            """UPDATE telegram_updates SET claimed_by = NULL, claim_expires = 0
               WHERE update_id = :id AND claimed_by = :me AND handled_at IS NULL""",
            {"id": update_id, "me": self.owner},
        )

    async def orphans(self) -> list[int]:
        """Updates whose replica died (or gave them back) before handling them, oldest first."""
        rows = await self._db.fetch_all(
            """SELECT update_id FROM telegram_updates
               WHERE handled_at IS NULL AND claim_expires < :now ORDER BY update_id""",
            {"now": time.time()},
        )
        return [int(row["update_id"]) for row in rows]

    async def take(self, update_id: int) -> str | None:
        """Claim an orphan to handle it now: its body, or None if another process took it."""
        # One at a time, just before handling: a sweep cut short leaves the rest unclaimed.
        now = time.time()
        async with self._db.transaction() as statements:
            kept = await statements.fetch_one(
                """UPDATE telegram_updates SET claimed_by = :me, claim_expires = :until
                   WHERE update_id = :id AND handled_at IS NULL AND claim_expires < :now
                   RETURNING body""",
                {"me": self.owner, "until": now + CLAIM_SECONDS, "now": now, "id": update_id},
            )
        return None if kept is None else str(kept["body"])

    async def forget_handled(self, before: float) -> int:
        """Drop the tombstones of updates handled before `before` (a UNIX time); how many."""
        return await self._db.execute(
            "DELETE FROM telegram_updates WHERE handled_at < :before", {"before": before}
        )
