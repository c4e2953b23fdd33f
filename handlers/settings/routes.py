"""/settings (default parameters, original files) and /language, edited in place with buttons."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    Message,
)
from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.telegram.i18n import _
from bot.telegram.menus import set_chat_menu_button
from bot.web.gallery import gallery_url
from handlers.settings.menu import (
    CODE_FLAGS,
    SettingsCallback,
    SettingsInput,
    code_invalid,
    code_question,
    parse_choice,
    parse_code,
    settings_keyboard,
    settings_text,
    submenu_keyboard,
)
from storage.settings import UserSettingsRepo


async def show_settings(
    message: Message, user_settings: UserSettingsRepo, settings: Settings
) -> None:
    """/settings: the summary and the menu."""
    if message.from_user is None:
        return
    mine = await user_settings.get(message.from_user.id)
    translation = settings.translate_url is not None
    await message.answer(
        settings_text(mine, speeds=settings.allowed_speeds, translation=translation),
        reply_markup=settings_keyboard(mine, translation=translation),
    )


async def show_languages(message: Message) -> None:
    """/language: the language menu."""
    await message.answer(
        _("Choose the bot's language:"),
        reply_markup=submenu_keyboard("locale", with_default=False),
    )


async def on_settings(
    query: CallbackQuery,
    callback_data: SettingsCallback,
    message: Message,
    user_settings: UserSettingsRepo,
    i18n: I18n,
    settings: Settings,
    state: FSMContext,
) -> None:
    """A press in the settings menu."""
    user_id = query.from_user.id
    field, value = callback_data.field, callback_data.value
    speeds = settings.allowed_speeds
    translation = settings.translate_url is not None
    if field == "open":
        await query.answer()
        await message.edit_reply_markup(
            reply_markup=submenu_keyboard(value, with_default=value != "locale", speeds=speeds)
        )
        return
    if field == "ask":
        if value not in CODE_FLAGS:
            await query.answer(_("That choice is not available."), show_alert=True)
            return
        await query.answer()
        await state.set_state(SettingsInput.code)
        await state.update_data(code_field=value)
        await message.answer(
            code_question(value),
            reply_markup=ForceReply(
                selective=True, input_field_placeholder="123456" if value == "sref" else "abc123"
            ),
        )
        return
    mine = await user_settings.get(user_id)
    if field != "back":
        try:
            parsed = parse_choice(field, value, speeds)
        except ValueError:
            await query.answer(_("That choice is not available."), show_alert=True)
            return
        mine = await user_settings.update(user_id, **{field: parsed})
    if field == "locale" and mine.locale:
        # Answer in the language just chosen, not the one this update arrived in.
        i18n.current_locale = mine.locale
    await query.answer(_("Saved") if field != "back" else None)
    await message.edit_text(
        settings_text(mine, speeds=speeds, translation=translation),
        reply_markup=settings_keyboard(mine, translation=translation),
    )
    base = settings.mini_app_base
    if field == "locale" and base and message.chat.type == ChatType.PRIVATE and query.bot:
        # The gallery button's label follows the language (a chat of its own; see menus).
        await set_chat_menu_button(query.bot, message.chat.id, gallery_url(base))


async def on_code(
    message: Message, state: FSMContext, user_settings: UserSettingsRepo, settings: Settings
) -> None:
    """A style or personalization code typed after the menu asked for it."""
    field = str((await state.get_data()).get("code_field") or "")
    if field not in CODE_FLAGS or message.from_user is None:
        await state.set_state(None)
        return
    try:
        code = parse_code(field, re.sub(r"\s+", " ", message.text or ""))
    except ValueError:
        if message.reply_to_message is None:
            # Not an answer to the question but something else (a prompt): let it through.
            await state.set_state(None)
            raise SkipHandler from None
        await message.reply(code_invalid(field))
        return
    await state.set_state(None)
    await state.update_data(code_field=None)
    await user_settings.update(message.from_user.id, **{field: code})
    await message.reply(
        _("Saved: <code>{flag} {code}</code>").format(flag=CODE_FLAGS[field], code=code)
        if code
        else _("Removed.")
    )
    await show_settings(message, user_settings, settings)


def build_router() -> Router:
    """The router for /settings and /language."""
    router = Router(name="settings")
    router.message.register(show_settings, Command("settings"))
    router.message.register(show_languages, Command("language"))
    router.callback_query.register(
        on_settings, SettingsCallback.filter(), F.message.as_("message")
    )
    router.message.register(on_code, SettingsInput.code, F.text, ~F.text.startswith("/"))
    return router
