"""Pruning and FSM waiting states on a real SQLite file."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from aiogram.fsm.storage.base import StorageKey

from storage.database import Database
from storage.fsm import DatabaseStorage
from storage.prompts import PromptRequest, PromptRequestRepo
from storage.retention import prune
from storage.tasks import TaskRecord, TaskRepo, TaskUpdate
from storage.uploads import UploadRecord, UploadRepo
from storage.usage import UsageRepo

DAY = 24 * 3600.0
KEY = StorageKey(bot_id=1, chat_id=1001, user_id=1001)


@pytest.fixture
async def db(database_target: sa.URL) -> AsyncIterator[Database]:
    database = await Database.open(database_target)
    yield database
    await database.close()


async def task(
    repo: TaskRepo,
    name: str,
    *,
    status: str,
    file_id: str | None = None,
    delivered: bool = True,
    parent: TaskRecord | None = None,
) -> TaskRecord:
    """A task that reached `status` (or stayed in flight), delivered or not."""
    record = await repo.create(
        type="imagine",
        chat_id=1001,
        user_id=1001,
        prompt=name,
        parent_id=parent.id if parent else None,
    )
    await repo.set_hash(record.id, name)
    await repo.apply(TaskUpdate(hash=name, status=status))
    if delivered and status in ("done", "error"):
        await repo.mark_delivered(record.id, message_id=record.id, file_id=file_id)
    return await repo.require(record.id)


async def age(db: Database, table: str, days: float, column: str = "created_at") -> None:
    """Make every row of a table `days` old."""
    await db.execute(f"UPDATE {table} SET {column} = :when", {"when": time.time() - days * DAY})


async def test_old_useless_rows_go_and_what_history_offers_stays(db: Database) -> None:
    repo = TaskRepo(db)
    failed = await task(repo, "failed", status="error")
    described = await task(repo, "described", status="done")  # a text result: no file id
    result = await task(repo, "result", status="done", file_id="AgACresult")
    child = await task(repo, "child", status="done", file_id="AgACchild", parent=failed)
    running = await task(repo, "running", status="progress")
    undelivered = await task(repo, "undelivered", status="done", delivered=False)
    await UsageRepo(db).charge(
        task_id=described.id, user_id=1001, chat_id=1001, type="describe", day="2026-01-01"
    )
    await UsageRepo(db).charge(
        task_id=result.id, user_id=1001, chat_id=1001, type="imagine", day="2026-01-01"
    )
    prompts = PromptRequestRepo(db)
    await prompts.add(PromptRequest(1001, 50, 1001, result.id, "reroll"))
    await UploadRepo(db).add(1001, UploadRecord("u1", None, "https://cdn/x.png", "png", 1, 1))
    states = DatabaseStorage(db)
    await states.set_state(KEY, "Flow:describe_next")
    for table in ("tasks", "prompt_requests", "uploads"):
        await age(db, table, 91)
    await age(db, "fsm_states", 91, "updated_at")
    fresh = await task(repo, "fresh failure", status="error")
    await prompts.add(PromptRequest(1001, 51, 1001, fresh.id, "reroll"))

    pruned = await prune(db, time.time() - 90 * DAY)

    gone = [failed, described]
    kept = [result, child, running, undelivered, fresh]
    assert [await repo.get(t.id) for t in gone] == [None, None]
    assert None not in [await repo.get(t.id) for t in kept]
    # The kept child no longer points at its pruned parent.
    assert (await repo.require(child.id)).parent_id is None
    assert pruned.tasks == 2
    assert pruned.prompt_requests == 1
    assert await prompts.take(1001, 51, 1001) is not None
    assert pruned.uploads == 1
    assert await UploadRepo(db).recent("u1", None) is None
    assert pruned.waiting_states == 1
    assert await states.get_state(KEY) is None
    # Usage goes with its task; a kept task keeps its charge.
    rows = await db.fetch_all("SELECT task_id FROM usage")
    assert [row["task_id"] for row in rows] == [result.id]
    # A second run finds nothing more.
    assert (await prune(db, time.time() - 90 * DAY)).total == 0


async def test_waiting_states_persist_and_clear(database_target: sa.URL) -> None:
    path = database_target
    db = await Database.open(path)
    states = DatabaseStorage(db)
    await states.set_state(KEY, "Flow:blend")
    await states.update_data(KEY, {"blend": [{"file_id": "a"}]})
    assert await states.update_data(KEY, {"more": 1}) == {"blend": [{"file_id": "a"}], "more": 1}
    await db.close()

    db = await Database.open(path)
    states = DatabaseStorage(db)
    assert await states.get_state(KEY) == "Flow:blend"
    assert await states.get_data(KEY) == {"blend": [{"file_id": "a"}], "more": 1}
    other = StorageKey(bot_id=1, chat_id=-100, user_id=1001)
    assert await states.get_state(other) is None
    await states.set_state(KEY, None)
    await states.set_data(KEY, {})
    row = await db.fetch_one("SELECT COUNT(*) AS n FROM fsm_states")
    assert row is not None and row["n"] == 0  # nothing to remember, no row
    await db.close()
