"""Test data builders: a task record with sensible defaults, any field overridden by name."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from storage.database import Database
from storage.tasks import TaskRecord, status_rank

# A finished private imagine with nothing sent yet: each test names only what it cares about.
_DEFAULTS: dict[str, Any] = {
    "id": 1,
    "hash": "h",
    "parent_id": None,
    "type": "imagine",
    "action": None,
    "choice": None,
    "prompt": "a cat",
    "status": "done",
    "progress": 100,
    "status_reason": None,
    "prefilter": [],
    "result": None,
    "next_actions": None,
    "account_hash": None,
    "chat_id": 100,
    "thread_id": None,
    "user_id": 100,
    "request_message_id": None,
    "status_message_id": None,
    "status_is_photo": False,
    "result_message_id": None,
    "result_file_id": None,
    "delivery": "pending",
    "locale": "en",
    "requester": None,
    "created_at": 0.0,
    "updated_at": 0.0,
}


def task_record(**fields: Any) -> TaskRecord:
    """A task record with these fields, the rest from the defaults."""
    unknown = fields.keys() - _DEFAULTS.keys() - {"request", "status_preview"}
    if unknown:
        raise TypeError(f"TaskRecord has no fields {sorted(unknown)}")
    return TaskRecord(**{**_DEFAULTS, **fields})


_COLUMNS = [field.name for field in dataclasses.fields(TaskRecord)]


async def stored(db: Database, record: TaskRecord) -> TaskRecord:
    """Store a record as a row of the tasks table (the view reads tasks from there)."""
    values = {name: getattr(record, name) for name in _COLUMNS}
    for name in ("prefilter", "result", "next_actions"):
        values[name] = json.dumps(values[name]) if values[name] is not None else None
    values["status_is_photo"] = int(record.status_is_photo)
    values["status_rank"] = status_rank(record.status)
    await db.execute(
        f"""INSERT INTO tasks ({", ".join(values)})
            VALUES ({", ".join(f":{name}" for name in values)})""",
        values,
    )
    return record
