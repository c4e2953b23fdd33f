"""Charged usage (one row per finished, counted job) and the numbers the owner's console shows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class Count:
    """A number of jobs under a label (a status, a type, a user, a reason)."""

    key: str
    count: int


@dataclass(frozen=True, slots=True)
class TopUser:
    """A user and how many jobs they started."""

    user_id: int
    first_name: str | None
    username: str | None
    count: int


class UsageRepo:
    """Charges finished jobs once and counts what was used."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def charge(
        self, *, task_id: int, user_id: int, chat_id: int, type: str, day: str
    ) -> bool:
        """Charge a finished job to its requester; False when it was already charged."""
        changed = await self._db.execute(
            """INSERT INTO usage (task_id, user_id, chat_id, type, day, charged_at)
               VALUES (:task_id, :user_id, :chat_id, :type, :day, :now)
               ON CONFLICT DO NOTHING""",
            {
                "task_id": task_id,
                "user_id": user_id,
                "chat_id": chat_id,
                "type": type,
                "day": day,
                "now": time.time(),
            },
        )
        return changed == 1

    async def used_by_user(self, user_id: int, day: str) -> int:
        """Jobs charged to a user on a day."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM usage WHERE user_id = :id AND day = :day",
            {"id": user_id, "day": day},
        )
        return int(row["n"]) if row else 0

    async def used_in_chat(self, chat_id: int, day: str) -> int:
        """Jobs charged in a chat on a day."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM usage WHERE chat_id = :id AND day = :day",
            {"id": chat_id, "day": day},
        )
        return int(row["n"]) if row else 0

    async def running(
        self, *, user_id: int | None = None, chat_id: int | None = None, types: Sequence[str] = ()
    ) -> int:
        """Unfinished jobs of a user or in a chat (of the given types, or of any type)."""
        where = ["status_rank < 4"]
        params: dict[str, object] = {}
        if user_id is not None:
            where.append("user_id = :user_id")
            params["user_id"] = user_id
        if chat_id is not None:
            where.append("chat_id = :chat_id")
            params["chat_id"] = chat_id
        if types:
            where.append("type IN :types")
            params["types"] = list(types)
        row = await self._db.fetch_one(
            f"SELECT COUNT(*) AS n FROM tasks WHERE {' AND '.join(where)}", params
        )
        return int(row["n"]) if row else 0

    async def by_status(self, since: float) -> list[Count]:
        """Jobs started since a time, by status."""
        rows = await self._db.fetch_all(
            """SELECT status AS key, COUNT(*) AS n FROM tasks WHERE created_at >= :since
               GROUP BY status ORDER BY n DESC""",
            {"since": since},
        )
        return [Count(str(row["key"]), int(row["n"])) for row in rows]

    async def by_type(self, since: float) -> list[Count]:
        """Jobs started since a time, by type."""
        rows = await self._db.fetch_all(
            """SELECT type AS key, COUNT(*) AS n FROM tasks WHERE created_at >= :since
               GROUP BY type ORDER BY n DESC""",
            {"since": since},
        )
        return [Count(str(row["key"]), int(row["n"])) for row in rows]

    async def top_users(self, since: float, limit: int = 5) -> list[TopUser]:
        """Who started the most jobs since a time."""
        rows = await self._db.fetch_all(
            """SELECT t.user_id, u.first_name, u.username, COUNT(*) AS n
               FROM tasks t LEFT JOIN users u ON u.id = t.user_id
               WHERE t.created_at >= :since
               GROUP BY t.user_id, u.first_name, u.username ORDER BY n DESC LIMIT :limit""",
            {"since": since, "limit": limit},
        )
        return [
            TopUser(int(row["user_id"]), row["first_name"], row["username"], int(row["n"]))
            for row in rows
        ]

    async def top_errors(self, since: float, limit: int = 5) -> list[Count]:
        """The commonest reasons jobs failed since a time."""
        rows = await self._db.fetch_all(
            """SELECT COALESCE(status_reason, '') AS key, COUNT(*) AS n FROM tasks
               WHERE created_at >= :since AND status = 'error'
               GROUP BY COALESCE(status_reason, '') ORDER BY n DESC LIMIT :limit""",
            {"since": since, "limit": limit},
        )
        return [Count(str(row["key"]), int(row["n"])) for row in rows]

    async def account_hashes(self) -> list[str]:
        """Every account hash tasks ran on."""
        rows = await self._db.fetch_all(
            "SELECT DISTINCT account_hash FROM tasks WHERE account_hash IS NOT NULL"
        )
        return [str(row["account_hash"]) for row in rows]
