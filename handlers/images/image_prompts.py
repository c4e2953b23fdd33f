"""Image prompts: /imagine with photos (captioned, replying to them, or from the photo menu)."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.telegram.albums import RecentAlbums
from handlers.common import requester_of
from handlers.images.common import Flow, PhotoIntent, Photos, refs_of
from handlers.images.flows import ImageFlows, replied_images


async def imagine_on_photo(
    message: Message,
    command: CommandObject,
    recent_albums: RecentAlbums,
    image_flows: ImageFlows,
    bot: Bot,
) -> None:
    """`/imagine <prompt>` replying to a photo (or an album's photo): they are image prompts."""
    refs = await replied_images(message, recent_albums, bot)
    if refs is None:
        return
    draft = await image_flows.draft(message, command.args, images=len(refs))
    if draft is not None:
        await image_flows.image_prompt(message, refs, draft, requester_of(message))


async def imagine_captioned(message: Message, photos: Photos, image_flows: ImageFlows) -> None:
    """Photos (an album) captioned `/imagine <prompt>`."""
    first, refs = photos.first, photos.refs
    draft = await image_flows.draft(first, photos.args, images=len(refs))
    if draft is not None:
        await image_flows.image_prompt(first, refs, draft, requester_of(first))


async def image_prompt_text(message: Message, state: FSMContext, image_flows: ImageFlows) -> None:
    """The prompt the photo menu's "Use as image prompt" asked for."""
    refs = refs_of(await state.get_data(), "prompt_images")
    draft = await image_flows.draft(message, message.text, images=len(refs))
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
