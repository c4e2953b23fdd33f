"""The migration stairway: a database from version 1, holding data, upgraded one step at a time.

Each step must keep every row already stored (new columns get their defaults), and the last
step must give the schema a fresh database has. A new table needs a sample row in `SAMPLES`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiosqlite

from storage.database import MIGRATIONS, Database
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRepo

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
    rows = await db.fetch_all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {row["name"] for row in rows}


async def _rows(db: Database, table: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await db.fetch_all(f"SELECT * FROM {table} ORDER BY rowid")]


async def _insert(db: Database, table: str) -> None:
    for sample in SAMPLES[table]:
        columns = ", ".join(sample)
        marks = ", ".join("?" for _ in sample)
        await db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(sample.values())
        )


async def _schema(db: Database) -> list[tuple[str, str, str | None]]:
    rows = await db.fetch_all(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [(row["type"], row["name"], row["sql"]) for row in rows]


async def _open_raw(path: Path) -> Database:
    connection = await aiosqlite.connect(path)
    connection.row_factory = aiosqlite.Row
    await connection.execute("PRAGMA foreign_keys=ON")
    return Database(connection)


async def test_a_version_1_database_with_data_climbs_every_migration(tmp_path: Path) -> None:
    db = await _open_raw(tmp_path / "old.sqlite3")
    await db.migrate(target=1)
    version = await db.fetch_one("PRAGMA user_version")
    assert version is not None and version[0] == 1
    stored: dict[str, list[dict[str, Any]]] = {}
    for step in range(1, len(MIGRATIONS) + 1):
        await db.migrate(target=step)
        tables = await _tables(db)
        for table, before in stored.items():
            after = await _rows(db, table)
            # Old columns keep their values; columns a step adds only add keys.
            kept = [{k: row[k] for k in old} for row, old in zip(after, before, strict=True)]
            assert kept == before, f"migration {step} changed rows of {table}"
        added = tables - stored.keys()
        assert added <= SAMPLES.keys(), f"migration {step} adds {added}: give them sample rows"
        # In SAMPLES' order, so rows that others refer to come first.
        for table in [name for name in SAMPLES if name in added]:
            await _insert(db, table)
            stored[table] = await _rows(db, table)
    assert stored.keys() == SAMPLES.keys()

    # The climbed schema is the schema of a database created today.
    fresh = await Database.open(tmp_path / "fresh.sqlite3")
    assert await _schema(db) == await _schema(fresh)
    await fresh.close()

    # And today's code reads the old rows, defaults filled in.
    tasks = TaskRepo(db)
    grid = await tasks.get(1)
    assert grid is not None and grid.result == DONE_RESULT and grid.next_actions == NEXT_ACTIONS
    assert (grid.locale, grid.requester, grid.request) == ("en", None, None)
    upscale = await tasks.get(2)
    assert upscale is not None and upscale.parent_id == 1 and upscale.thread_id == 7
    assert [record.id for record in await tasks.in_flight()] == [2]
    settings = await UserSettingsRepo(db).get(1001)
    assert settings.aspect == "16:9" and settings.translate
    await db.close()
