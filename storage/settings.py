"""Per-user preferences: default Midjourney parameters, original files, language."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Any

from storage.database import Database


@dataclass(frozen=True, slots=True)
class UserSettings:
    """What a user chose in /settings and /language (None: not chosen)."""

    aspect: str | None = None
    model: str | None = None
    stylize: int | None = None
    raw: bool = False
    speed: str | None = None
    originals: bool = False
    locale: str | None = None
    draft: bool = False
    exp: int | None = None
    sref: str | None = None
    personalize: str | None = None
    sw: int | None = None
    ow: int | None = None
    translate: bool = True


_COLUMNS = [field.name for field in fields(UserSettings)]
_FLAGS = ("raw", "originals", "draft", "translate")


def _stored(value: Any) -> Any:
    """Flags are stored as 0 and 1, as on SQLite (PostgreSQL won't put a bool in an integer)."""
    return int(value) if isinstance(value, bool) else value


class UserSettingsRepo:
    """Reads and writes user settings; a user who never chose anything gets the defaults."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> UserSettings:
        """The user's settings."""
        row = await self._db.fetch_one(
            f"SELECT {', '.join(_COLUMNS)} FROM user_settings WHERE user_id = :user_id",
            {"user_id": user_id},
        )
        if row is None:
            return UserSettings()
        values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
        for name in _FLAGS:
            values[name] = bool(values[name])
        return UserSettings(**values)

    async def update(self, user_id: int, **changes: Any) -> UserSettings:
        """Change some settings and return the result."""
        unknown = changes.keys() - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        settings = replace(await self.get(user_id), **changes)
        values = {name: _stored(getattr(settings, name)) for name in _COLUMNS}
        placeholders = ", ".join(f":{name}" for name in _COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS)
        await self._db.execute(
            f"""INSERT INTO user_settings (user_id, {", ".join(_COLUMNS)}, updated_at)
                VALUES (:user_id, {placeholders}, :now)
                ON CONFLICT(user_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at""",
            {"user_id": user_id, **values, "now": time.time()},
        )
        return settings
