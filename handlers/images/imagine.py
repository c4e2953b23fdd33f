"""/imagine, and plain text in a private chat."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.config import Settings
from bot.jobs.request import ImagineRequest
from bot.jobs.service import Jobs
from bot.prompts.translate import Translator
from bot.userapi.models import TaskType
from handlers.common import requester_of
from handlers.images.prompting import draft_prompt
from storage.settings import UserSettingsRepo


async def start_imagine(
    message: Message,
    text: str | None,
    jobs: Jobs,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """Check the prompt and start the job, or say what is wrong with it."""
    draft = await draft_prompt(
        message, text, user_settings=user_settings, config=settings, translator=translator
    )
    if draft is not None:
        prompt = draft.compose()
        request = ImagineRequest(prompt=prompt)
        await jobs.start(requester_of(message), request, type=TaskType.IMAGINE, prompt=prompt)


async def imagine(
    message: Message,
    command: CommandObject,
    jobs: Jobs,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """`/imagine <prompt>`."""
    await start_imagine(message, command.args, jobs, user_settings, settings, translator)


async def plain_text(
    message: Message,
    jobs: Jobs,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """Plain text in a private chat is a prompt."""
    await start_imagine(message, message.text, jobs, user_settings, settings, translator)


def build_router() -> Router:
    """The router for /imagine and private plain text."""
    router = Router(name="imagine")
    router.message.register(imagine, Command("imagine"))
    router.message.register(
        plain_text, F.chat.type == ChatType.PRIVATE, F.text, ~F.text.startswith("/")
    )
    return router
