"""A job's status message, and a process's turn to change it (see progress.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from storage.tasks import TaskRecord


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """The message that shows a job's state: a text, or a photo preview with a caption."""

    message_id: int
    is_photo: bool
    # The preview a photo shows (None for a text, and for photos stored before previews were).
    preview: str | None = None

    @classmethod
    def of(cls, task: TaskRecord) -> StatusMessage | None:
        """The status message a task has, as stored."""
        if task.status_message_id is None:
            return None
        return cls(task.status_message_id, task.status_is_photo, task.status_preview)


@dataclass(slots=True)
class Turn:
    """This process's turn to change a task's status message."""

    # The task as stored when the turn began (no other process changes its status message).
    task: TaskRecord
    number: int
    # When (monotonic) this turn stops sending.
    ends: float
    status: StatusMessage | None = field(init=False)

    def __post_init__(self) -> None:
        self.status = StatusMessage.of(self.task)

    def lasts(self) -> bool:
        """Whether the turn still holds: a request sent now can't overlap another's turn."""
        return time.monotonic() < self.ends


class TurnTaken(Exception):
    """Another process holds the turn, and the caller would rather not wait for it."""
