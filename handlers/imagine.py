"""/imagine, and plain text in a private chat."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.i18n import _
from bot.jobs import Jobs
from bot.prompts import (
    MAX_PROMPT_LENGTH,
    PromptDefaults,
    PromptError,
    apply_defaults,
    normalize_prompt,
)
from handlers.common import requester_of
from storage.settings import UserSettings, UserSettingsRepo


def prompt_problem(error: PromptError) -> str:
    """What is wrong with a prompt, in the user's language."""
    if error.code == "unknown_flag":
        return _(
            "Midjourney doesn't know the parameter {flag}. Please check the spelling "
            "(the list is in /help)."
        ).format(flag=error.detail)
    if error.code == "too_long":
        return _("That prompt is too long: Midjourney takes at most {limit} characters.").format(
            limit=MAX_PROMPT_LENGTH
        )
    return _(
        "Please add a prompt after the command, for example:\n"
        "<code>/imagine a red fox in the snow, watercolor --ar 3:2</code>"
    )


def defaults_of(settings: UserSettings) -> PromptDefaults:
    """The prompt defaults in a user's settings."""
    return PromptDefaults(
        aspect=settings.aspect,
        model=settings.model,
        stylize=settings.stylize,
        raw=settings.raw,
        speed=settings.speed,
    )


async def prepare_prompt(
    message: Message, text: str | None, user_settings: UserSettingsRepo
) -> str | None:
    """The prompt to send, with the user's defaults; None after telling what is wrong."""
    try:
        prompt = normalize_prompt(text)
    except PromptError as error:
        await message.reply(prompt_problem(error))
        return None
    user_id = message.from_user.id if message.from_user else 0
    return apply_defaults(prompt, defaults_of(await user_settings.get(user_id)))


async def start_imagine(
    message: Message, text: str | None, jobs: Jobs, user_settings: UserSettingsRepo
) -> None:
    """Check the prompt and start the job, or say what is wrong with it."""
    prompt = await prepare_prompt(message, text, user_settings)
    if prompt is not None:
        await jobs.imagine(requester_of(message), prompt)


def build_router() -> Router:
    """The router for /imagine and private plain text."""
    router = Router(name="imagine")

    @router.message(Command("imagine"))
    async def imagine(
        message: Message, command: CommandObject, jobs: Jobs, user_settings: UserSettingsRepo
    ) -> None:
        await start_imagine(message, command.args, jobs, user_settings)

    @router.message(F.chat.type == ChatType.PRIVATE, F.text, ~F.text.startswith("/"))
    async def plain_text(message: Message, jobs: Jobs, user_settings: UserSettingsRepo) -> None:
        await start_imagine(message, message.text, jobs, user_settings)

    return router
