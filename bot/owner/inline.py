"""Inline mode is switched on at @BotFather: the admins hear once while it is off."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n

from bot.telegram.i18n import DEFAULT_LOCALE, _
from storage.access import AccessRepo
from storage.database import Database
from storage.settings import UserSettingsRepo

log = logging.getLogger(__name__)

# bot_settings: "yes" once the admins were told inline mode is off, "no" while it is on.
TOLD_KEY = "inline_off_told"


def inline_off_text(username: str) -> str:
    """How to turn inline mode on, for the admins."""
    return _(
        "ℹ️ Inline mode is off, so typing <code>@{username}</code> in a chat shows nothing. "
        "Users could share their images in any chat with it. To turn it on, open "
        "@BotFather, send <code>/setinline</code>, pick @{username} and write a placeholder, "
        "for example <i>Search your images…</i>"
    ).format(username=username)


async def tell_if_inline_off(bot: Bot, db: Database, admin_ids: list[int], i18n: I18n) -> None:
    """Read getMe; if inline mode is off, tell the admins, once until it has been on again.

    The stored state makes it once across restarts, and once across replicas starting
    together: only the one whose write changed it sends.
    """
    me, access = await bot.me(), AccessRepo(db)
    if me.supports_inline_queries:
        await access.change_setting(TOLD_KEY, "no")
        return
    log.warning("Inline mode is off: @BotFather /setinline turns it on")
    if not admin_ids or not await access.change_setting(TOLD_KEY, "yes"):
        return
    settings = UserSettingsRepo(db)
    for admin_id in admin_ids:
        locale = (await settings.get(admin_id)).locale or DEFAULT_LOCALE
        with i18n.context(), i18n.use_locale(locale):
            text = inline_off_text(me.username or "bot")
        try:
            await bot.send_message(chat_id=admin_id, text=text)
        except TelegramAPIError as error:
            log.warning("Inline mode notice to admin %d not sent: %s", admin_id, error.message)
