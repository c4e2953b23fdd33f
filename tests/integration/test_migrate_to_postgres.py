"""`python -m bot migrate --to postgresql://...`: an owner moves without losing a credit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiogram.fsm.storage.base import StorageKey

from storage.credits import CreditsRepo
from storage.database import Database, database_url
from storage.fsm import DatabaseStorage
from storage.prompts import PromptRequest, PromptRequestRepo
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRepo, TaskUpdate
from storage.users import UserRepo
from tests.conftest import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
ANN, BOB = 1001, 1002


async def _a_bot_in_use(path: Path) -> None:
    """A SQLite database as a running bot leaves it: people, money, history and work in flight."""
    db = await Database.open(path)
    users, tasks, credits = UserRepo(db), TaskRepo(db), CreditsRepo(db)
    for user, name in ((ANN, "ann"), (BOB, "bob")):
        await users.seen_user(user, username=name, first_name=name.title(), language_code="en")
    await UserSettingsRepo(db).update(ANN, aspect="16:9", raw=True)
    await credits.purchase(user_id=ANN, charge_id="tg-1", credits=10, stars=50, payload="p")
    done = await tasks.create(type="imagine", chat_id=ANN, user_id=ANN, prompt="a fox")
    await credits.reserve(user_id=ANN, task_id=done.id, cost=1)
    await tasks.set_hash(done.id, "done-hash")
    await tasks.apply(TaskUpdate(hash="done-hash", status="done", result={"url": "u"}))
    await tasks.mark_delivered(done.id, message_id=5, file_id="AgAC")
    await credits.settle(done.id, done=True)
    running = await tasks.create(
        type="upscale", chat_id=ANN, user_id=ANN, prompt="a fox", parent_id=done.id
    )
    await credits.reserve(user_id=ANN, task_id=running.id, cost=1)
    await tasks.set_hash(running.id, "running-hash")
    await tasks.create(type="imagine", chat_id=-100, user_id=BOB, prompt="queued", request="{}")
    await PromptRequestRepo(db).add(PromptRequest(-100, 9, BOB, done.id, "custom_zoom"))
    await DatabaseStorage(db).set_data(
        StorageKey(bot_id=1, chat_id=BOB, user_id=BOB), {"refs": ["a"]}
    )
    await db.close()


def _migrate(source: Path, target: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BOT_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate", "--from", str(source), "--to", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _snapshot(db: Database) -> dict[str, object]:
    tasks, credits = TaskRepo(db), CreditsRepo(db)
    return {
        "tasks": await tasks.recent_for_user(ANN, 10) + await tasks.recent_for_user(BOB, 10),
        "queued": await tasks.queued(),
        "in_flight": await tasks.in_flight(),
        "balance": await credits.balance(ANN),
        "purchases": await credits.purchases(ANN),
        "settings": await UserSettingsRepo(db).get(ANN),
        "prompt": await PromptRequestRepo(db).latest(-100, BOB),
    }


async def test_a_sqlite_database_moves_whole_and_a_full_target_is_refused(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "bot.sqlite3"
    await _a_bot_in_use(source)
    target = await fresh_postgres_database(postgres_url)
    # A password in the URL (the test cluster trusts everyone) must never be printed.
    target = target.replace("postgres@", "postgres:hunter2@")

    moved = _migrate(source, target)
    assert moved.returncode == 0, moved.stderr
    assert "tasks: 3 rows" in moved.stdout and "credit_ledger: 4 rows" in moved.stdout

    old = await Database.open(source)
    new = await Database.open(database_url(target, tmp_path))
    assert new.dialect == "postgresql"
    assert await _snapshot(new) == await _snapshot(old)
    # New tasks are numbered after the copied ones.
    fresh = await TaskRepo(new).create(type="imagine", chat_id=ANN, user_id=ANN, prompt="new")
    assert fresh.id == 4
    await old.close()
    await new.close()

    again = _migrate(source, target)
    assert again.returncode == 1
    assert "Not migrated" in again.stderr and "holds rows" in again.stderr
    assert "hunter2" not in again.stderr + again.stdout


def test_a_missing_source_is_told_in_one_line(tmp_path: Path) -> None:
    result = _migrate(tmp_path / "none.sqlite3", "postgresql://postgres@127.0.0.1:9/x")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Not migrated: no SQLite database at")
    assert "Traceback" not in result.stderr


async def test_only_a_postgresql_url_is_taken(tmp_path: Path) -> None:
    await _a_bot_in_use(tmp_path / "bot.sqlite3")
    result = _migrate(tmp_path / "bot.sqlite3", "mysql://x@y/z")
    assert result.returncode == 1
    assert "Not migrated: DATABASE_URL must be postgresql://" in result.stderr
