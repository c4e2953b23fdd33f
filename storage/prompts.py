"""Prompt requests: a button that needs a prompt asked for it; the reply carries it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """The bot asked a user for a prompt with a message; this is what the answer is for."""

    chat_id: int
    message_id: int
    user_id: int
    task_id: int
    action: str


class PromptRequestRepo:
    """Stores prompt requests so that an answer still works after a restart."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, request: PromptRequest) -> None:
        """Remember a prompt request."""
        await self._db.execute(
            """INSERT INTO prompt_requests
                   (chat_id, message_id, user_id, task_id, action, created_at)
               VALUES (:chat_id, :message_id, :user_id, :task_id, :action, :now)
               ON CONFLICT (chat_id, message_id) DO UPDATE SET user_id = excluded.user_id,
                   task_id = excluded.task_id, action = excluded.action,
                   created_at = excluded.created_at""",
            {
                "chat_id": request.chat_id,
                "message_id": request.message_id,
                "user_id": request.user_id,
                "task_id": request.task_id,
                "action": request.action,
                "now": time.time(),
            },
        )

    async def take(self, chat_id: int, message_id: int, user_id: int) -> PromptRequest | None:
        """Remove and return the request this reply answers, if it is the asker's."""
        params = {"chat_id": chat_id, "message_id": message_id, "user_id": user_id}
        # Taken by one answer only: the DELETE that removes it decides who.
        async with self._db.transaction() as statements:
            row = await statements.fetch_one(
                """DELETE FROM prompt_requests
                   WHERE chat_id = :chat_id AND message_id = :message_id AND user_id = :user_id
                   RETURNING *""",
                params,
            )
        if row is None:
            return None
        return PromptRequest(
            row["chat_id"], row["message_id"], row["user_id"], row["task_id"], row["action"]
        )

    async def latest(self, chat_id: int, user_id: int) -> PromptRequest | None:
        """The user's most recent open request in a chat (private chats accept plain answers)."""
        row = await self._db.fetch_one(
            """SELECT * FROM prompt_requests WHERE chat_id = :chat_id AND user_id = :user_id
               ORDER BY created_at DESC LIMIT 1""",
            {"chat_id": chat_id, "user_id": user_id},
        )
        if row is None:
            return None
        return PromptRequest(
            row["chat_id"], row["message_id"], row["user_id"], row["task_id"], row["action"]
        )
