"""The migration stairway: a database at the first revision, holding data, upgraded step by step.

Each step must keep every row already stored (new columns get their defaults), and the last
step must give the schema a fresh database has; on SQLite and on PostgreSQL. A database made by
a release before Alembic (PRAGMA user_version) is recognised and brought up to date. A new
table needs a sample row in `SAMPLES`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiosqlite
import sqlalchemy as sa

from storage.database import Database
from storage.migrations.upgrade import revisions
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRepo
from tests.integration.legacy_sqlite import MIGRATIONS

NOW = 1_767_000_000.0
DONE_RESULT = {"url": "https://cdn.example/grid.png", "width": 2048, "height": 2048}
NEXT_ACTIONS = [{"type": "upscale", "choices": [1, 2, 3, 4]}, {"type": "reroll"}]
# Realistic rows for every table, inserted at the version that creates the table.
SAMPLES: dict[str, list[dict[str, Any]]] = {
    "tasks": [
        {
            "id": 1,
            "hash": "grid-hash",
            "type": "imagine",
            "prompt": "a lighthouse in a storm --ar 3:2",
            "status": "done",
            "status_rank": 4,
            "progress": 100,
            "prefilter": json.dumps([]),
            "result": json.dumps(DONE_RESULT),
            "next_actions": json.dumps(NEXT_ACTIONS),
            "account_hash": "acc-1",
            "chat_id": 1001,
            "user_id": 1001,
            "request_message_id": 10,
            "status_message_id": 11,
            "result_message_id": 12,
            "result_file_id": "AgACAgIAAxkBAAIB",
            "delivery": "delivered",
            "created_at": NOW,
            "updated_at": NOW + 40,
            "delivered_at": NOW + 41,
        },
        {
            "id": 2,
            "hash": "upscale-hash",
            "parent_id": 1,
            "type": "upscale",
            "action": "upscale:2",
            "choice": "2",
            "prompt": "a lighthouse in a storm --ar 3:2",
            "status": "progress",
            "status_rank": 3,
            "progress": 40,
            "chat_id": -100500,
            "thread_id": 7,
            "user_id": 1001,
            "status_message_id": 13,
            "delivery": "none",
            "created_at": NOW + 50,
            "updated_at": NOW + 55,
        },
    ],
    "users": [
        {
            "id": 1001,
            "username": "ann",
            "first_name": "Ann",
            "language_code": "ru",
            "created_at": NOW,
            "last_seen_at": NOW + 50,
        }
    ],
    "chats": [{"id": -100500, "type": "supergroup", "title": "Art club", "created_at": NOW}],
    "prompt_requests": [
        {
            "chat_id": -100500,
            "message_id": 14,
            "user_id": 1001,
            "task_id": 1,
            "action": "variation:3",
            "created_at": NOW + 60,
        }
    ],
    "user_settings": [
        {
            "user_id": 1001,
            "aspect": "16:9",
            "model": "6.1",
            "stylize": 250,
            "raw": 1,
            "speed": "fast",
            "originals": 1,
            "locale": "ru",
            "updated_at": NOW,
        },
    ],
    "bot_settings": [{"key": "access_mode", "value": "allowlist"}],
    "user_access": [
        {"user_id": 1001, "allowed": 1, "banned": 0, "daily_limit": 20, "concurrent_limit": 2}
    ],
    "chat_access": [
        {"chat_id": -100500, "allowed": 1, "enabled": 1, "daily_limit": 50, "anyone_presses": 1}
    ],
    "usage": [
        {
            "task_id": 1,
            "user_id": 1001,
            "chat_id": 1001,
            "type": "imagine",
            "day": "2025-12-29",
            "charged_at": NOW + 40,
        }
    ],
    "uploads": [
        {
            "id": 1,
            "user_id": 1001,
            "file_unique_id": "AQADxyz",
            "account_hash": "acc-1",
            "url": "https://cdn.example/up.png",
            "ext": "png",
            "width": 1024,
            "height": 768,
            "created_at": NOW,
        }
    ],
    "fsm_states": [
        {
            "key": "bot:1001:1001",
            "state": "Flow:describe",
            "data": json.dumps({"refs": []}),
            "updated_at": NOW,
        }
    ],
    "telegram_updates": [
        {
            "update_id": 900001,
            "body": json.dumps({"update_id": 900001, "message": {"text": "/help"}}),
            "claimed_by": "replica-a",
            "claim_expires": NOW + 30,
            "received_at": NOW,
        }
    ],
    "credit_ledger": [
        {
            "id": 1,
            "user_id": 1001,
            "kind": "purchase",
            "amount": 100,
            "charge_id": "tg-charge-1",
            "stars": 50,
            "created_at": NOW,
        },
        {
            "id": 2,
            "user_id": 1001,
            "kind": "reserve",
            "amount": -1,
            "task_id": 1,
            "created_at": NOW + 1,
        },
    ],
}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    return set(names) - {"alembic_version", "sqlite_sequence"}


async def _rows(db: Database, table: str) -> list[dict[str, Any]]:
    rows = [dict(row) for row in await db.fetch_all(f"SELECT * FROM {table}")]
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


def _kept(after: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows after a step, cut to the columns they had before it."""
    columns = before[0].keys()
    kept = [{column: row[column] for column in columns} for row in after]
    return sorted(kept, key=lambda row: json.dumps(row, sort_keys=True, default=str))


async def _insert(db: Database, table: str) -> None:
    for sample in SAMPLES[table]:
        columns = ", ".join(sample)
        marks = ", ".join(f":{name}" for name in sample)
        await db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", sample)


async def _schema(db: Database) -> dict[str, Any]:
    """Tables with their columns, indexes and foreign keys, as the database reports them."""

    def read(sync: sa.Connection) -> dict[str, Any]:
        inspector = sa.inspect(sync)
        return {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in inspector.get_columns(table)
                ],
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
                "foreign_keys": sorted(
                    (tuple(k["constrained_columns"]), k["referred_table"])
                    for k in inspector.get_foreign_keys(table)
                ),
            }
            for table in sorted(inspector.get_table_names())
        }

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


def _affinities(schema: dict[str, Any]) -> dict[str, Any]:
    """A SQLite schema with each column's type cut to its affinity, and nullability dropped."""
    affinity = {"FLOAT": "REAL", "BIGINT": "INTEGER"}
    return {
        table: {
            **parts,
            "columns": [(name, affinity.get(kind, kind)) for name, kind, *_ in parts["columns"]],
        }
        for table, parts in schema.items()
    }


async def _climb(db: Database, steps: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Upgrade one step at a time, adding sample rows to each new table; check nothing is lost."""
    stored: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        await db.migrate(step)
        tables = await _tables(db)
        for table, before in stored.items():
            assert _kept(await _rows(db, table), before) == before, f"{step} changed {table}"
        added = tables - stored.keys()
        assert added <= SAMPLES.keys(), f"revision {step} adds {added}: give them sample rows"
        # In SAMPLES' order, so rows that others refer to come first.
        for table in [name for name in SAMPLES if name in added]:
            await _insert(db, table)
            stored[table] = await _rows(db, table)
    assert stored.keys() == SAMPLES.keys()
    return stored


async def _reads_old_rows(db: Database) -> None:
    """Today's code reads the old rows, defaults filled in."""
    tasks = TaskRepo(db)
    grid = await tasks.get(1)
    assert grid is not None and grid.result == DONE_RESULT and grid.next_actions == NEXT_ACTIONS
    assert (grid.locale, grid.requester, grid.request) == ("en", None, None)
    upscale = await tasks.get(2)
    assert upscale is not None and upscale.parent_id == 1 and upscale.thread_id == 7
    assert [record.id for record in await tasks.in_flight()] == [2]
    settings = await UserSettingsRepo(db).get(1001)
    assert settings.aspect == "16:9" and settings.translate


async def test_a_first_revision_database_with_data_climbs_every_migration(
    database_target: sa.URL, tmp_path: Path
) -> None:
    db = await Database.open(database_target, migrate=False)
    await _climb(db, revisions())
    await _reads_old_rows(db)
    # The climbed schema is the schema of a database created today.
    fresh_target = database_target
    if database_target.get_backend_name() == "sqlite":
        fresh_target = database_target.set(database=str(tmp_path / "fresh.sqlite3"))
    else:
        await db.close()
        db = await Database.open(database_target, migrate=False)
    climbed = await _schema(db)
    await db.close()
    if database_target.get_backend_name() == "sqlite":
        fresh = await Database.open(fresh_target)
        assert climbed == await _schema(fresh)
        await fresh.close()


async def _legacy_database(path: Path) -> set[str]:
    """A database as the last release before Alembic left it, holding every sample row."""
    connection = await aiosqlite.connect(path)
    await connection.execute("PRAGMA foreign_keys=ON")
    created: set[str] = set()
    for number, script in enumerate(MIGRATIONS, start=1):
        await connection.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        async with connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ) as cursor:
            tables = {row[0] for row in await cursor.fetchall()}
        for table in [name for name in SAMPLES if name in tables - created]:
            for sample in SAMPLES[table]:
                marks = ", ".join("?" for _ in sample)
                await connection.execute(
                    f"INSERT INTO {table} ({', '.join(sample)}) VALUES ({marks})",
                    tuple(sample.values()),
                )
            await connection.commit()
        created |= tables
    await connection.close()
    return created


async def test_a_database_from_before_alembic_is_recognised_and_brought_up_to_date(
    tmp_path: Path,
) -> None:
    legacy = await _legacy_database(tmp_path / "old.sqlite3")
    db = await Database.open(tmp_path / "old.sqlite3")
    for table, samples in SAMPLES.items():
        if table not in legacy:
            continue
        rows = await _rows(db, table)
        assert len(rows) == len(samples), table
        for sample in samples:
            assert any(sample.items() <= row.items() for row in rows), (table, sample)
    await _reads_old_rows(db)
    fresh = await Database.open(tmp_path / "fresh.sqlite3")
    # The same tables, columns, indexes and keys; types as SQLite stores them (REAL is FLOAT).
    assert _affinities(await _schema(db)) == _affinities(await _schema(fresh))
    await fresh.close()
    # The ledger remembers task 1: a new task never gets an id a hold was made for.
    await db.execute("DELETE FROM credit_ledger WHERE task_id IS NULL")
    new = await TaskRepo(db).create(type="imagine", chat_id=1, user_id=1, prompt="new")
    await db.close()
    assert new.id > 2
