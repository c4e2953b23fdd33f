"""Users and chats the bot has seen."""

from __future__ import annotations

import time

from storage.database import Database


class UserRepo:
    """Keeps who talked to the bot, and where."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def seen_user(
        self,
        user_id: int,
        *,
        username: str | None,
        first_name: str | None,
        language_code: str | None,
    ) -> None:
        """Insert or refresh a user."""
        now = time.time()
        await self._db.execute(
            """INSERT INTO users
                   (id, username, first_name, language_code, created_at, last_seen_at)
               VALUES (:id, :username, :first_name, :language_code, :now, :now)
               ON CONFLICT(id) DO UPDATE SET username = excluded.username,
                   first_name = excluded.first_name, language_code = excluded.language_code,
                   last_seen_at = excluded.last_seen_at""",
            {
                "id": user_id,
                "username": username,
                "first_name": first_name,
                "language_code": language_code,
                "now": now,
            },
        )

    async def seen_chat(self, chat_id: int, *, type: str, title: str | None) -> None:
        """Insert or refresh a chat."""
        await self._db.execute(
            """INSERT INTO chats (id, type, title, created_at) VALUES (:id, :type, :title, :now)
               ON CONFLICT(id) DO UPDATE SET type = excluded.type, title = excluded.title""",
            {"id": chat_id, "type": type, "title": title, "now": time.time()},
        )
