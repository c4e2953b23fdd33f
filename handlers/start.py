"""/start and /help: what the bot does, with examples."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.i18n import _
from bot.payments import Payments


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


def build_router() -> Router:
    """The router for /start and /help."""
    router = Router(name="start")

    @router.message(CommandStart())
    @router.message(Command("help"))
    async def start(message: Message, payments: Payments) -> None:
        me = await message.bot.me() if message.bot else None
        text = help_text(me.username if me and me.username else "bot")
        if payments.enabled:
            text += "\n\n" + _(
                "Your free jobs each day are on the house; after them a job costs credits, "
                "bought with Telegram Stars: <code>/buy</code>. <code>/balance</code> shows "
                "yours. A failed job costs nothing."
            )
        await message.answer(text)

    return router
