"""Image prompts: /imagine with photos (captioned, replying to them, or from the photo menu)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.config import Settings
from bot.translate import Translator
from handlers.common import requester_of
from handlers.image_common import Flow, PhotoIntent, Photos, RecentAlbums, refs_of
from handlers.image_jobs import ImageFlows, replied_images
from handlers.prompting import draft_prompt
from storage.settings import UserSettingsRepo


async def imagine_on_photo(
    message: Message,
    command: CommandObject,
    recent_albums: RecentAlbums,
    image_flows: ImageFlows,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """`/imagine <prompt>` replying to a photo (or an album's photo): they are image prompts."""
    refs = await replied_images(message, recent_albums)
    if refs is None:
        return
    draft = await draft_prompt(
        message,
        command.args,
        user_settings=user_settings,
        config=settings,
        translator=translator,
        images=len(refs),
    )
    if draft is None:
        return
    await image_flows.image_prompt(message, refs, draft, requester_of(message))


async def imagine_captioned(
    message: Message,
    photos: Photos,
    image_flows: ImageFlows,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """Photos (an album) captioned `/imagine <prompt>`."""
    first = photos.first
    draft = await draft_prompt(
        first,
        photos.args,
        user_settings=user_settings,
        config=settings,
        translator=translator,
        images=len(photos.refs),
    )
    if draft is None:
        return
    await image_flows.image_prompt(first, photos.refs, draft, requester_of(first))


async def image_prompt_text(
    message: Message,
    state: FSMContext,
    image_flows: ImageFlows,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """The prompt the photo menu's "Use as image prompt" asked for."""
    refs = refs_of(await state.get_data(), "prompt_images")
    draft = await draft_prompt(
        message,
        message.text,
        user_settings=user_settings,
        config=settings,
        translator=translator,
        images=len(refs),
    )
    if draft is None:
        return  # the question stays open for a better prompt
    await state.set_state(None)
    await image_flows.image_prompt(message, refs, draft, requester_of(message))


def build_router() -> Router:
    """The router for image prompts."""
    router = Router(name="image-prompts")
    router.message.register(
        imagine_on_photo,
        Command("imagine"),
        F.reply_to_message.photo | F.reply_to_message.document,
    )
    router.message.register(imagine_captioned, F.photo | F.document, PhotoIntent("imagine"))
    router.message.register(image_prompt_text, Flow.image_prompt, F.text, ~F.text.startswith("/"))
    return router
