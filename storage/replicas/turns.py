"""Status messages: which message shows a task's state, and whose turn it is to change it.

A task's progress may reach any replica. The tasks table says which message shows it (a text,
or a photo and the preview it shows), and turns keep two processes from changing it at once:
a turn is taken by one conditional UPDATE that only one caller wins, and lasts until it is
ended or expires (its holder died). Turns are numbered, so a holder can tell whether another
process had one since its own last (and what it knows of the message may be out of date).
"""

from __future__ import annotations

import time

from storage.database import Database, Row

# A turn not ended by then (its process died) is anyone's; holders stop sending before it.
TURN_SECONDS = 30.0


class StatusTurns:
    """The tasks' status messages, changed in turns (a part of `TaskRepo`)."""

    _db: Database

    async def take_status_turn(self, task_id: int) -> Row | None:
        """Take the turn to change a task's status message: the task as it is then (its
        `status_turn` the turn's number), or None if another holds the turn."""
        now = time.time()
        # The row comes back with the turn: one statement, not a second to read the task.
        row = await self._db.change_returning(
            """UPDATE tasks SET status_turn = status_turn + 1, status_turn_until = :until
               WHERE id = :id AND (status_turn_until IS NULL OR status_turn_until < :now)
               RETURNING *""",
            {"id": task_id, "now": now, "until": now + TURN_SECONDS},
        )
        if row is not None:
            return row
        if await self._db.fetch_one("SELECT id FROM tasks WHERE id = :id", {"id": task_id}):
            return None
        raise LookupError(f"task {task_id} does not exist")

    async def end_status_turn(self, task_id: int, turn: int) -> None:
        """End a turn (unless it expired and another began): the next caller may take one."""
        await self._db.execute(
            "UPDATE tasks SET status_turn_until = NULL WHERE id = :id AND status_turn = :turn",
            {"id": task_id, "turn": turn},
        )

    async def set_status_message(
        self,
        task_id: int,
        message_id: int,
        *,
        is_photo: bool,
        preview: str | None = None,
        turn: int | None = None,
    ) -> bool:
        """Remember which message shows the task's progress; False if `turn` is over."""
        # Only while the turn lasts: once another process has taken one, it may have read the
        # old message and posted its own; this caller then removes the message it just sent.
        during = "" if turn is None else "AND status_turn = :turn"
        changed = await self._db.execute(
            f"""UPDATE tasks SET status_message_id = :message_id, status_is_photo = :is_photo,
                   status_preview = :preview
                WHERE id = :id {during}""",
            {
                "message_id": message_id,
                "is_photo": int(is_photo),
                "preview": preview,
                "id": task_id,
                "turn": turn,
            },
        )
        return changed == 1

    async def clear_status_message(self, task_id: int) -> None:
        """Forget a status message that no longer exists (the user deleted it)."""
        await self._db.execute(
            """UPDATE tasks SET status_message_id = NULL, status_is_photo = 0,
                   status_preview = NULL
               WHERE id = :id""",
            {"id": task_id},
        )
