"""/start and /help: what the bot does, with examples."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

HELP_TEXT = """<b>Midjourney in Telegram</b>

Send <code>/imagine</code> and a prompt, for example:
<code>/imagine a lighthouse in a storm, oil painting --ar 16:9</code>
In a private chat plain text works too.

You'll see the progress, then a grid of four images with Midjourney's buttons:
<b>U1–U4</b> upscale one image, <b>V1–V4</b> make variations, <b>🔄</b> runs the prompt again.
An upscale gets <b>Vary</b>, <b>Zoom Out</b>, <b>Custom Zoom</b>, the pan arrows ⬅️ ➡️ ⬆️ ⬇️,
<b>Upscale (Subtle/Creative)</b>, <b>Animate</b> and <b>🌱 Seed</b>.

Parameters work as in Midjourney: <code>--ar 3:2</code>, <code>--v 6.1</code>,
<code>--niji 6</code>, <code>--stylize 250</code>, <code>--no text</code>.
If your phone turns <code>--</code> into a dash, the bot turns it back.

In groups use <code>/imagine@{username}</code> or reply to the bot."""


def build_router() -> Router:
    """The router for /start and /help."""
    router = Router(name="start")

    @router.message(CommandStart())
    @router.message(Command("help"))
    async def start(message: Message) -> None:
        me = await message.bot.me() if message.bot else None
        await message.answer(HELP_TEXT.format(username=me.username if me else "bot"))

    return router
