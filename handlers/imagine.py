"""/imagine, and plain text in a private chat."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.i18n import _
from bot.jobs import Jobs
from bot.prompts import MAX_PROMPT_LENGTH, PromptError, normalize_prompt
from handlers.common import requester_of


def prompt_problem(error: PromptError) -> str:
    """What is wrong with a prompt, in the user's language."""
    if str(error) == "too_long":
        return _("That prompt is too long: Midjourney takes at most {limit} characters.").format(
            limit=MAX_PROMPT_LENGTH
        )
    return _(
        "Please add a prompt after the command, for example:\n"
        "<code>/imagine a red fox in the snow, watercolor --ar 3:2</code>"
    )


async def start_imagine(message: Message, text: str | None, jobs: Jobs) -> None:
    """Check the prompt and start the job, or say what is wrong with it."""
    try:
        prompt = normalize_prompt(text)
    except PromptError as error:
        await message.reply(prompt_problem(error))
        return
    await jobs.imagine(requester_of(message), prompt)


def build_router() -> Router:
    """The router for /imagine and private plain text."""
    router = Router(name="imagine")

    @router.message(Command("imagine"))
    async def imagine(message: Message, command: CommandObject, jobs: Jobs) -> None:
        await start_imagine(message, command.args, jobs)

    @router.message(F.chat.type == ChatType.PRIVATE, F.text, ~F.text.startswith("/"))
    async def plain_text(message: Message, jobs: Jobs) -> None:
        await start_imagine(message, message.text, jobs)

    return router
