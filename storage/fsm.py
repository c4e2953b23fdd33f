"""Waiting states (aiogram FSM) in the database: a flow half done survives a restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from storage.database import Database


class DatabaseStorage(BaseStorage):
    """aiogram's FSM storage on the bot's database; a row per user in a chat (and topic)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._keys = DefaultKeyBuilder(
            with_bot_id=True, with_business_connection_id=True, with_destiny=True
        )
        # update_data reads then writes; two updates of one user must not interleave there.
        self._lock = asyncio.Lock()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Set (or clear, with None) the state for a key."""
        value = state.state if isinstance(state, State) else state
        async with self._lock:
            await self._write(key, state=value, data=await self._read_data(key))

    async def get_state(self, key: StorageKey) -> str | None:
        """The state for a key, if any."""
        row = await self._db.fetch_one(
            "SELECT state FROM fsm_states WHERE key = :key", {"key": self._keys.build(key)}
        )
        return str(row["state"]) if row and row["state"] is not None else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the data for a key."""
        async with self._lock:
            await self._write(key, state=await self.get_state(key), data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """A copy of the data for a key (empty when none)."""
        return await self._read_data(key)

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge into the data for a key, as dict.update does, and return the result."""
        async with self._lock:
            current = await self._read_data(key)
            current.update(data)
            await self._write(key, state=await self.get_state(key), data=current)
            return dict(current)

    async def close(self) -> None:
        """Nothing to close: the database belongs to the app, which closes it."""

    async def _read_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._db.fetch_one(
            "SELECT data FROM fsm_states WHERE key = :key", {"key": self._keys.build(key)}
        )
        if row is None:
            return {}
        value = json.loads(row["data"])
        return value if isinstance(value, dict) else {}

    async def _write(self, key: StorageKey, *, state: str | None, data: dict[str, Any]) -> None:
        built = self._keys.build(key)
        if state is None and not data:
            # Nothing to remember: no row, so idle users cost no space.
            await self._db.execute("DELETE FROM fsm_states WHERE key = :key", {"key": built})
            return
        await self._db.execute(
            """INSERT INTO fsm_states (key, state, data, updated_at)
               VALUES (:key, :state, :data, :now)
               ON CONFLICT(key) DO UPDATE SET state = excluded.state, data = excluded.data,
                   updated_at = excluded.updated_at""",
            {
                "key": built,
                "state": state,
                "data": json.dumps(data, ensure_ascii=False),
                "now": time.time(),
            },
        )
