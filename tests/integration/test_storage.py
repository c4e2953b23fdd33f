"""Tasks on SQLite and PostgreSQL: monotonic updates and exactly-once delivery claims."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.jobs.queue import JobQueue, Slots
from storage.database import Database
from storage.migrations.upgrade import head_revision
from storage.retention import prune
from storage.tasks import Cap, TaskRepo, TaskUpdate

HEAD = head_revision()


@pytest.fixture
async def repo(database_target: sa.URL) -> AsyncIterator[TaskRepo]:
    db = await Database.open(database_target)
    yield TaskRepo(db)
    await db.close()


async def new_task(repo: TaskRepo, task_hash: str = "h1") -> int:
    record = await repo.create(type="imagine", chat_id=1, user_id=2, prompt="a cat")
    await repo.set_hash(record.id, task_hash)
    return record.id


async def test_schema_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    mode = await db.fetch_one("PRAGMA journal_mode")
    version = await db.fetch_one("SELECT version_num FROM alembic_version")
    await db.close()
    assert mode is not None and mode["journal_mode"] == "wal"
    assert version is not None and version["version_num"] == HEAD
    again = await Database.open(tmp_path / "x.sqlite3")  # reopening migrates nothing twice
    await again.close()


async def test_updates_only_move_forward(repo: TaskRepo) -> None:
    await new_task(repo)
    assert await repo.apply(TaskUpdate(hash="h1", status="progress", progress=40))
    assert await repo.apply(TaskUpdate(hash="h1", status="progress", progress=20)) is None
    assert await repo.apply(TaskUpdate(hash="h1", status="waiting")) is None
    done = await repo.apply(TaskUpdate(hash="h1", status="done", result={"url": "u"}))
    assert done is not None and done.status == "done" and done.delivery == "pending"
    assert await repo.apply(TaskUpdate(hash="h1", status="progress", progress=90)) is None
    assert await repo.apply(TaskUpdate(hash="h1", status="done", result={"url": "v"})) is None
    assert await repo.apply(TaskUpdate(hash="h1", status="error")) is None
    final = await repo.get_by_hash("h1")
    assert final is not None and final.result == {"url": "u"} and final.progress == 40


async def test_unknown_hash_changes_nothing(repo: TaskRepo) -> None:
    assert await repo.apply(TaskUpdate(hash="nope", status="done")) is None


async def test_delivery_is_claimed_once_and_survives_a_restart(repo: TaskRepo) -> None:
    task_id = await new_task(repo)
    await repo.apply(TaskUpdate(hash="h1", status="done", result={"url": "u"}))
    assert await repo.claim_delivery(task_id)
    assert not await repo.claim_delivery(task_id)
    # The process dies mid-delivery: the claim is handed back at the next start.
    assert await repo.release_claims() == 1
    assert [r.id for r in await repo.undelivered()] == [task_id]
    assert await repo.claim_delivery(task_id)
    await repo.mark_delivered(task_id, message_id=7, file_id="F")
    assert await repo.undelivered() == []
    assert not await repo.claim_delivery(task_id)


async def test_in_flight_queued_and_orphans(repo: TaskRepo) -> None:
    sent = await new_task(repo, "h1")
    orphan = await repo.create(type="imagine", chat_id=1, user_id=2, prompt="x")
    waiting = await repo.create(type="imagine", chat_id=1, user_id=2, prompt="y")
    # A new job waits in the queue; once its POST may have gone out it is an orphan if cut off.
    assert [r.id for r in await repo.queued()] == [orphan.id, waiting.id]
    assert await repo.start_sending(orphan.id, "acc")
    assert not await repo.start_sending(orphan.id, "acc"), "sent once"
    assert (await repo.require(orphan.id)).account_hash == "acc"
    assert [r.id for r in await repo.in_flight()] == [sent]
    assert [r.id for r in await repo.orphans(alone=True)] == [orphan.id]
    assert [r.id for r in await repo.queued()] == [waiting.id]
    failed = await repo.fail(orphan.id, "restarted")
    assert failed is not None and failed.status == "error" and failed.delivery == "pending"
    assert await repo.fail(orphan.id, "again") is None


async def test_task_ids_are_never_reused_after_the_newest_are_pruned(
    database_target: sa.URL,
) -> None:
    db = await Database.open(database_target)
    repo = TaskRepo(db)
    ids = [(await repo.create(type="imagine", chat_id=1, user_id=2, prompt="x")).id for _ in "ab"]
    # The newest task failed long ago: retention removes it.
    await repo.fail(ids[-1], "refused")
    await repo.mark_delivered(ids[-1], message_id=None, file_id=None)
    await db.execute("UPDATE tasks SET created_at = 0 WHERE id = :id", {"id": ids[-1]})
    assert (await prune(db, cutoff=1)).tasks == 1
    again = await repo.create(type="imagine", chat_id=1, user_id=2, prompt="y")
    await db.close()
    assert again.id > ids[-1]


async def test_claims_are_owned_expire_when_not_renewed_and_are_handed_back(
    database_target: sa.URL,
) -> None:
    db = await Database.open(database_target)
    mine, theirs = TaskRepo(db, owner="replica-a"), TaskRepo(db, owner="replica-b")
    task = await mine.create(type="imagine", chat_id=1, user_id=2, prompt="x")
    await mine.start_sending(task.id, None)
    # A submission under way in a live replica is not an orphan for the others...
    assert await theirs.orphans(alone=False) == []
    await mine.set_hash(task.id, "h")
    await mine.apply(TaskUpdate(hash="h", status="done"))
    assert await mine.claim_delivery(task.id)
    assert not await theirs.claim_delivery(task.id)
    assert await mine.renew_claims() == 1

    # replica-a dies: its claim is not renewed and expires; replica-b takes the delivery.
    await db.execute("UPDATE tasks SET claim_expires = 0 WHERE id = :id", {"id": task.id})
    assert await theirs.claim_delivery(task.id)
    await mine.unclaim(task.id)  # a late hand-back from the dead one undoes nothing
    assert not await mine.claim_delivery(task.id)
    # replica-b stops before it finishes: the delivery is free again at once.
    assert await theirs.hand_back() == 1
    assert await mine.claim_delivery(task.id)

    # ...but one whose submitter died is, once its claim expired.
    stuck = await theirs.create(type="imagine", chat_id=1, user_id=2, prompt="y")
    await theirs.start_sending(stuck.id, None)
    assert await mine.orphans(alone=False) == []
    await db.execute("UPDATE tasks SET claim_expires = 0 WHERE id = :id", {"id": stuck.id})
    assert [record.id for record in await mine.orphans(alone=False)] == [stuck.id]
    await db.close()


async def test_slots_count_every_replicas_jobs_and_forget_jobs_ended_elsewhere(
    database_target: sa.URL,
) -> None:
    db = await Database.open(database_target)
    mine, theirs = TaskRepo(db, owner="replica-a"), TaskRepo(db, owner="replica-b")
    queue = JobQueue(Slots(2))
    ours = await mine.create(type="imagine", chat_id=1, user_id=2, prompt="ours")
    await mine.start_sending(ours.id, None)
    queue.slots.take(ours.id, None)
    other = await theirs.create(type="imagine", chat_id=3, user_id=4, prompt="theirs")
    await theirs.start_sending(other.id, None)
    waiting = await mine.create(type="imagine", chat_id=1, user_id=2, prompt="waiting")
    queue.add(waiting.id, None)

    await queue.sync(mine)
    assert set(queue.slots.busy) == {ours.id, other.id} and queue.slots.full
    # Our job's result arrived at the other replica: here its slot would never free.
    await mine.fail(ours.id, "done elsewhere")
    await queue.sync(mine)
    assert set(queue.slots.busy) == {other.id}
    assert queue.grant() == [(waiting.id, None)]
    await db.close()


async def test_a_capped_start_counts_every_replicas_jobs_even_when_raced(
    database_target: sa.URL,
) -> None:
    db = await Database.open(database_target)
    replicas = [TaskRepo(db, owner=f"replica-{n}") for n in range(4)]
    jobs = [
        await replicas[0].create(type="imagine", chat_id=1, user_id=n, prompt=f"job {n}")
        for n in range(20)
    ]
    cap = Cap(limit=5, pool=None)
    started = await asyncio.gather(
        *(replicas[n % 4].start_sending(job.id, None, cap) for n, job in enumerate(jobs))
    )
    assert started.count(True) == 5
    refused = [job.id for job, ok in zip(jobs, started, strict=True) if not ok]
    assert {record.id for record in await replicas[0].queued()} == set(refused)
    # Per account: another account's pool has its own five.
    assert await replicas[1].start_sending(refused[0], "acc-2", Cap(limit=5, pool="acc-2"))
    await db.close()


async def delivered(repo: TaskRepo, user_id: int, type: str, prompt: str, n: int) -> int:
    """A finished task of a user whose photo Telegram holds as `file-<n>`."""
    record = await repo.create(type=type, chat_id=user_id, user_id=user_id, prompt=prompt)
    await repo.set_hash(record.id, f"hash-{n}")
    await repo.apply(TaskUpdate(hash=f"hash-{n}", status="done", result={"url": "u"}))
    await repo.mark_delivered(record.id, message_id=n, file_id=f"file-{n}")
    return record.id


async def test_inline_results_are_the_users_own_upscales_first_and_searchable(
    repo: TaskRepo,
) -> None:
    grid = await delivered(repo, 1, "imagine", "A Red FOX in the snow", 1)
    upscale = await delivered(repo, 1, "upscale", "A Red FOX in the snow", 2)
    cat = await delivered(repo, 1, "imagine", "Кот в шляпе, 100% pure_wool", 3)
    await delivered(repo, 2, "upscale", "a red fox of someone else", 4)
    failed = await repo.create(type="imagine", chat_id=1, user_id=1, prompt="a red fox")
    await repo.fail(failed.id, "refused")
    await repo.mark_delivered(failed.id, message_id=5, file_id=None)

    async def ids(*words: str, offset: int = 0, limit: int = 50) -> list[int]:
        found = await repo.gallery(1, words=list(words), offset=offset, limit=limit, upscaled=True)
        return [task.id for task in found]

    assert await ids() == [upscale, cat, grid]
    assert await ids("fox") == [upscale, grid]
    assert await ids("red", "SNOW") == [upscale, grid]
    assert await ids("fox", "cat") == []
    assert await ids("кот") == [cat]  # any case, beyond ASCII
    assert await ids("100%") == [cat] and await ids("pure_wool") == [cat]
    assert await ids("0%p") == [] and await ids("pure%wool") == []  # wildcards are literal
    assert await ids("someone") == []
    assert await ids(offset=1, limit=1) == [cat]
    assert await ids(offset=3) == []
    # Removed from history (the gallery's Remove): not offered any more.
    assert await repo.hide(cat, 1)
    assert await ids() == [upscale, grid]
