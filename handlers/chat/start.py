"""/start and /help: what the bot does, with examples."""

from __future__ import annotations

from aiogram import Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from aiogram.utils.i18n import I18n

from bot.config import Settings
from bot.owner.payments import Payments
from bot.telegram.i18n import DEFAULT_LOCALE, _
from bot.telegram.menus import set_chat_menu_button
from bot.web.gallery import gallery_url


def todays_midjourney(username: str, *, translation: bool) -> str:
    """The help on references, reply-to-photo prompts, V7's parameters and translation."""
    text = _(
        "<b>References from photos</b>\n"
        "Send a photo and pick <b>Style reference</b>, <b>Omni reference</b> (V7) or "
        "<b>Character reference</b> (V6), then write the prompt: the photo goes in as "
        "<code>--sref</code>, <code>--oref</code> or <code>--cref</code>. An album makes "
        "several style references.\n"
        "Reply to a photo (or an album) with <code>/imagine a fox in this style</code> for an "
        "image prompt, with <code>/sref a fox</code> for a style reference, or with "
        "<code>/ref</code> for the menu (in groups: <code>/imagine@{username}</code>).\n"
        "\n"
        "Today's parameters work too: <code>--draft</code>, <code>--exp 25</code>, "
        "<code>--sref 123456</code>, <code>--p abc123</code>, <code>--sw 200</code>, "
        "<code>--ow 200</code>. <code>/settings</code> keeps them as your defaults; a parameter "
        "your model version doesn't take is pointed out before anything is sent."
    ).format(username=username)
    if translation:
        text += "\n\n" + _(
            "Write prompts in your language: <code>/imagine кот в шляпе --ar 16:9</code> "
            "goes to Midjourney in English; parameters, links and text in quotes stay as "
            "written. <code>/settings</code> turns it off."
        )
    return text


def help_text(username: str) -> str:
    """The help message, in the user's language."""
    return _(
        "<b>Midjourney in Telegram</b>\n"
        "\n"
        "Send <code>/imagine</code> and a prompt, for example:\n"
        "<code>/imagine a lighthouse in a storm, oil painting --ar 16:9</code>\n"
        "In a private chat plain text works too.\n"
        "\n"
        "You'll see the progress, then a grid of four images with Midjourney's buttons:\n"
        "<b>U1–U4</b> upscale one image, <b>V1–V4</b> make variations, <b>🔄</b> runs the "
        "prompt again.\n"
        "An upscale gets <b>Vary</b>, <b>Zoom Out</b>, <b>Custom Zoom</b>, the pan arrows "
        "⬅️ ➡️ ⬆️ ⬇️, <b>Upscale (Subtle/Creative)</b> and <b>Animate</b>; a grid also gets "
        "<b>🌱 Seed</b>.\n"
        "\n"
        "Parameters work as in Midjourney: <code>--ar 3:2</code>, <code>--v 6.1</code>, "
        "<code>--niji 6</code>, <code>--stylize 250</code>, <code>--no text</code>.\n"
        "If your phone turns <code>--</code> into a dash, the bot turns it back.\n"
        "\n"
        "Send a photo to describe it, blend it or use it as an image prompt "
        "(<code>/describe</code>, <code>/blend</code>).\n"
        "\n"
        "<code>/settings</code>: your default aspect ratio, model, stylize and speed.\n"
        "<code>/history</code>: your recent jobs, to get a result again.\n"
        "<code>/language</code>: English or Russian.\n"
        "<code>/me</code>: the jobs you've used today and your limits.\n"
        "\n"
        "In groups use <code>/imagine@{username}</code>."
    ).format(username=username)


async def start(message: Message, settings: Settings, payments: Payments) -> None:
    """`/start` and `/help`: what the bot does and how to ask it."""
    me = await message.bot.me() if message.bot else None
    username = me.username if me and me.username else "bot"
    text = help_text(username) + "\n\n"
    text += todays_midjourney(username, translation=settings.translate_url is not None)
    if settings.mini_app_base is not None:
        text += "\n\n" + _(
            "<b>Your gallery</b>: <code>/gallery</code> (or the menu button) shows your "
            "images to browse, search, re-run and share."
        )
    if me is not None and me.supports_inline_queries:
        text += "\n\n" + _(
            "<b>Share anywhere</b>: in any chat, type <code>@{username}</code> and a word of "
            "the prompt, then pick one of your images."
        ).format(username=username)
    if payments.enabled:
        text += "\n\n" + _(
            "Your free jobs each day are on the house; after them a job costs credits, "
            "bought with Telegram Stars: <code>/buy</code>. <code>/balance</code> shows "
            "yours. A failed job costs nothing."
        )
    await message.answer(text)


async def welcome(message: Message, settings: Settings, payments: Payments, i18n: I18n) -> None:
    """`/start`: the help, and the gallery button labelled in the user's language."""
    await start(message, settings, payments)
    base = settings.mini_app_base
    private = message.chat.type == ChatType.PRIVATE
    # The bot-wide button is in the default language; only other languages need a call.
    if base is not None and private and i18n.current_locale != DEFAULT_LOCALE and message.bot:
        await set_chat_menu_button(message.bot, message.chat.id, gallery_url(base))


def build_router() -> Router:
    """The router for /start and /help."""
    router = Router(name="start")
    router.message.register(welcome, CommandStart())
    router.message.register(start, Command("help"))
    return router
