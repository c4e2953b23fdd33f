"""The language each update is answered in: the one chosen with /language, else the app's."""

from __future__ import annotations

from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18nMiddleware

from bot.telegram.i18n import pick_locale
from storage.settings import UserSettingsRepo


class UserLocaleMiddleware(I18nMiddleware):
    """The language chosen with /language, else the one the user's Telegram app is set to."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        """Pick the locale for this update."""
        user: User | None = data.get("event_from_user")
        if user is None:
            return self.i18n.default_locale
        repo: UserSettingsRepo = data["user_settings"]
        chosen = (await repo.get(user.id)).locale
        return chosen or pick_locale(user.language_code)
