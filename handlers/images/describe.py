"""/describe: a photo sent with it, replied to, or sent after it."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.telegram.i18n import _
from bot.telegram.uploads import ImageProblem, image_of
from handlers.common import requester_of
from handlers.images.common import Flow, PhotoIntent, Photos, looks_like_image, problem_text
from handlers.images.flows import ImageFlows


async def describe_command(
    message: Message,
    state: FSMContext,
    image_flows: ImageFlows,
) -> None:
    """`/describe` replying to a photo describes it; alone, it waits for the photo."""
    replied = message.reply_to_message
    if replied is not None and (replied.photo or replied.document):
        if not looks_like_image(replied):
            await message.reply(problem_text(ImageProblem("not_image")))
            return
        ref = image_of(replied)
        if ref is not None:
            await image_flows.describe(message, ref, requester_of(message))
            return
    await state.set_state(Flow.describe_next)
    await message.reply(_("Send me the photo to describe."))


async def describe_photo(
    message: Message,
    photos: Photos,
    state: FSMContext,
    image_flows: ImageFlows,
) -> None:
    """A photo captioned /describe, or the one /describe waited for (an album's first)."""
    if photos.intent == "describe_next":
        await state.set_state(None)
    await image_flows.describe(photos.first, photos.refs[0], requester_of(photos.first))


def build_router() -> Router:
    """The router for /describe and the photos it takes."""
    router = Router(name="describe")
    router.message.register(describe_command, Command("describe"), F.text)
    router.message.register(
        describe_photo, F.photo | F.document, PhotoIntent("describe", "describe_next")
    )
    return router
