"""Who may use the bot: run-time settings, per-user and per-group access rules."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database


@dataclass(frozen=True, slots=True)
class UserRule:
    """What admins decided about one user (None: the environment's default applies)."""

    user_id: int
    allowed: bool = False
    banned: bool = False
    daily_limit: int | None = None
    concurrent_limit: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRule:
    """What admins decided about one group."""

    chat_id: int
    allowed: bool = False
    enabled: bool = True
    daily_limit: int | None = None
    anyone_presses: bool = False


class AccessRepo:
    """Reads and writes access rules; a missing row means "the defaults"."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def setting(self, key: str) -> str | None:
        """A run-time setting admins changed, if they did."""
        row = await self._db.fetch_one(
            "SELECT value FROM bot_settings WHERE key = :key", {"key": key}
        )
        return str(row["value"]) if row else None

    async def set_setting(self, key: str, value: str) -> None:
        """Store a run-time setting."""
        await self._db.execute(
            """INSERT INTO bot_settings (key, value) VALUES (:key, :value)
               ON CONFLICT(key) DO UPDATE SET value = excluded.value""",
            {"key": key, "value": value},
        )

    async def change_setting(self, key: str, value: str) -> bool:
        """Store a run-time setting; whether it changed (of replicas racing, one sees True)."""
        changed = await self._db.execute(
            """INSERT INTO bot_settings (key, value) VALUES (:key, :value)
               ON CONFLICT(key) DO UPDATE SET value = excluded.value
               WHERE bot_settings.value <> excluded.value""",
            {"key": key, "value": value},
        )
        return changed == 1

    async def user(self, user_id: int) -> UserRule:
        """The rule for a user (defaults when none was stored)."""
        row = await self._db.fetch_one(
            "SELECT * FROM user_access WHERE user_id = :id", {"id": user_id}
        )
        if row is None:
            return UserRule(user_id)
        return UserRule(
            user_id=user_id,
            allowed=bool(row["allowed"]),
            banned=bool(row["banned"]),
            daily_limit=row["daily_limit"],
            concurrent_limit=row["concurrent_limit"],
        )

    async def save_user(self, rule: UserRule) -> None:
        """Store a user's rule whole."""
        await self._db.execute(
            """INSERT INTO user_access (user_id, allowed, banned, daily_limit, concurrent_limit)
               VALUES (:user_id, :allowed, :banned, :daily_limit, :concurrent_limit)
               ON CONFLICT(user_id) DO UPDATE SET allowed = excluded.allowed,
                   banned = excluded.banned, daily_limit = excluded.daily_limit,
                   concurrent_limit = excluded.concurrent_limit""",
            {
                "user_id": rule.user_id,
                "allowed": int(rule.allowed),
                "banned": int(rule.banned),
                "daily_limit": rule.daily_limit,
                "concurrent_limit": rule.concurrent_limit,
            },
        )

    async def chat(self, chat_id: int) -> ChatRule:
        """The rule for a group (defaults when none was stored)."""
        row = await self._db.fetch_one(
            "SELECT * FROM chat_access WHERE chat_id = :id", {"id": chat_id}
        )
        if row is None:
            return ChatRule(chat_id)
        return ChatRule(
            chat_id=chat_id,
            allowed=bool(row["allowed"]),
            enabled=bool(row["enabled"]),
            daily_limit=row["daily_limit"],
            anyone_presses=bool(row["anyone_presses"]),
        )

    async def save_chat(self, rule: ChatRule) -> None:
        """Store a group's rule whole."""
        await self._db.execute(
            """INSERT INTO chat_access (chat_id, allowed, enabled, daily_limit, anyone_presses)
               VALUES (:chat_id, :allowed, :enabled, :daily_limit, :anyone_presses)
               ON CONFLICT(chat_id) DO UPDATE SET allowed = excluded.allowed,
                   enabled = excluded.enabled, daily_limit = excluded.daily_limit,
                   anyone_presses = excluded.anyone_presses""",
            {
                "chat_id": rule.chat_id,
                "allowed": int(rule.allowed),
                "enabled": int(rule.enabled),
                "daily_limit": rule.daily_limit,
                "anyone_presses": int(rule.anyone_presses),
            },
        )

    async def find_user(self, username: str) -> int | None:
        """The id of a user the bot has seen under this @username."""
        row = await self._db.fetch_one(
            "SELECT id FROM users WHERE lower(username) = lower(:name)",
            {"name": username.lstrip("@")},
        )
        return int(row["id"]) if row else None

    async def user_name(self, user_id: int) -> tuple[str | None, str | None]:
        """A seen user's first name and username."""
        row = await self._db.fetch_one(
            "SELECT first_name, username FROM users WHERE id = :id", {"id": user_id}
        )
        return (row["first_name"], row["username"]) if row else (None, None)
