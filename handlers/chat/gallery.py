"""/gallery: a button that opens the gallery Mini App (a grid of the user's results)."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, WebAppInfo

from bot.config import Settings
from bot.telegram.i18n import _
from bot.web.gallery import gallery_url


async def open_gallery(message: Message, settings: Settings) -> None:
    """`/gallery`: the button to open it, in a private chat (Telegram opens Mini Apps there)."""
    base = settings.mini_app_base
    if base is None:
        await message.answer(
            _("The gallery needs the bot to be reachable over HTTPS; /history lists your jobs.")
        )
        return
    if message.chat.type != ChatType.PRIVATE:
        # Telegram allows Mini App buttons in private chats only.
        await message.reply(_("The gallery opens in our private chat: send /gallery there."))
        return
    button = InlineKeyboardButton(
        text=_("🖼 Open the gallery"), web_app=WebAppInfo(url=gallery_url(base))
    )
    await message.answer(
        _("Your images, newest first: search them, open one to re-run, vary or share it."),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )


def build_router() -> Router:
    """The router for /gallery."""
    router = Router(name="gallery")
    router.message.register(open_gallery, Command("gallery"))
    return router
