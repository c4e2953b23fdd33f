"""The command menus Telegram shows: everyone's, and the admins' with the console added."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    MenuButtonDefault,
    MenuButtonWebApp,
    WebAppInfo,
)
from aiogram.utils.i18n import I18n

from bot.telegram.i18n import DEFAULT_LOCALE, LOCALES, _

log = logging.getLogger(__name__)


def user_commands(paid: bool = False) -> list[BotCommand]:
    """The command menu everyone sees, in the current language."""
    if paid:
        return [
            *user_commands(),
            BotCommand(command="buy", description=_("Buy credits with Telegram Stars")),
            BotCommand(command="balance", description=_("Your credits and purchases")),
        ]
    return [
        BotCommand(command="imagine", description=_("Create images from a prompt")),
        BotCommand(command="settings", description=_("Default aspect ratio, model, speed")),
        BotCommand(command="history", description=_("Your recent jobs")),
        BotCommand(command="gallery", description=_("Browse your images")),
        BotCommand(command="language", description=_("Change the language")),
        BotCommand(command="me", description=_("Your usage today and your limits")),
        BotCommand(command="help", description=_("How to use the bot")),
    ]


async def set_command_menus(bot: Bot, i18n: I18n, paid: bool = False) -> None:
    """Publish the command menu in every language (Telegram picks by the user's app language)."""
    for locale in LOCALES:
        with i18n.context(), i18n.use_locale(locale):
            commands = user_commands(paid)
        language = None if locale == DEFAULT_LOCALE else locale
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language)


async def set_admin_menus(
    bot: Bot,
    i18n: I18n,
    admin_ids: list[int],
    console: Callable[[bool], list[BotCommand]],
    paid: bool = False,
) -> None:
    """Give each admin's private chat the user commands plus the console's."""
    for admin_id in admin_ids:
        for locale in LOCALES:
            with i18n.context(), i18n.use_locale(locale):
                commands = user_commands(paid) + console(paid)
            language = None if locale == DEFAULT_LOCALE else locale
            try:
                await bot.set_my_commands(
                    commands, scope=BotCommandScopeChat(chat_id=admin_id), language_code=language
                )
            except TelegramAPIError as error:
                # An admin who never opened the bot has no chat to scope the menu to yet.
                log.warning("No command menu for admin %d: %s", admin_id, error.message)
                break


def gallery_button(gallery_url: str) -> MenuButtonWebApp:
    """The menu button that opens the gallery, labelled in the current language."""
    return MenuButtonWebApp(text=_("Gallery"), web_app=WebAppInfo(url=gallery_url))


async def set_menu_button(bot: Bot, i18n: I18n, gallery_url: str | None) -> None:
    """Make the chat menu button open the gallery Mini App (Telegram's default without one).

    Telegram opens Mini Apps over HTTPS only: without an HTTPS address the button goes back to
    Telegram's default, so a button set by an earlier run never points at a dead address. The
    default button is one for everyone, so its text is in the default language; chats in
    another language get their own (`set_chat_menu_button`).
    """
    if gallery_url is None:
        button: MenuButtonWebApp | MenuButtonDefault = MenuButtonDefault()
    else:
        with i18n.context(), i18n.use_locale(DEFAULT_LOCALE):
            button = gallery_button(gallery_url)
    await _set_button(bot, button)


async def set_chat_menu_button(bot: Bot, chat_id: int, gallery_url: str) -> None:
    """Label one private chat's gallery button in the language the user reads the bot in."""
    # Telegram's setChatMenuButton has no language_code (setMyCommands has): a chat of its own
    # is the only way to a translated label. One call per /start or language change.
    await _set_button(bot, gallery_button(gallery_url), chat_id)


async def _set_button(
    bot: Bot, button: MenuButtonWebApp | MenuButtonDefault, chat_id: int | None = None
) -> None:
    try:
        await bot.set_chat_menu_button(chat_id=chat_id, menu_button=button)
    except TelegramAPIError as error:
        # The commands still work without it: a refused button is not worth failing for.
        log.warning("Chat menu button not set: %s", error.message)
