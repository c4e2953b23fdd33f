"""References: a photo as a style (--sref), omni (--oref) or character (--cref) reference."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.telegram.albums import RecentAlbums
from bot.telegram.i18n import _
from handlers.common import requester_of
from handlers.images.common import (
    MAX_REFERENCES,
    REFERENCE_COMMANDS,
    Flow,
    PhotoIntent,
    Photos,
    bot_username,
    menu_too_old,
    parse_command,
    refs_of,
)
from handlers.images.flows import ImageFlows, ask_reference, offer_menu, replied_images


async def reference_on_photo(
    message: Message,
    command: CommandObject,
    recent_albums: RecentAlbums,
    state: FSMContext,
    image_flows: ImageFlows,
    bot: Bot,
) -> None:
    """`/sref`, `/oref`, `/cref` (with or without a prompt) or `/ref` replying to a photo."""
    refs = await replied_images(message, recent_albums, bot)
    if refs is None:
        return
    name = command.command.lower()
    if name == "ref":
        await offer_menu(message, refs, state)
        return
    if not command.args:
        await ask_reference(message, name, refs, state)
        return
    draft = await image_flows.draft(message, command.args, reference=name, refs=len(refs))
    if draft is not None:
        await image_flows.reference(message, refs, draft, requester_of(message))


async def reference_captioned(
    message: Message, photos: Photos, state: FSMContext, image_flows: ImageFlows
) -> None:
    """Photos (an album) captioned `/sref`, `/oref` or `/cref`, with or without a prompt."""
    first, kind, refs = photos.first, photos.intent, photos.refs
    if not photos.args:
        await ask_reference(first, kind, refs, state)
        return
    draft = await image_flows.draft(first, photos.args, reference=kind, refs=len(refs))
    if draft is not None:
        await image_flows.reference(first, refs, draft, requester_of(first))


async def reference_without_photo(message: Message) -> None:
    """A reference command with no photo to take."""
    await message.reply(
        _(
            "Reply to a photo (or an album) with this command, or send the photo with it "
            "as the caption, for example <code>/sref a cozy cabin in the woods</code>."
        )
    )


async def reference_prompt(
    message: Message, state: FSMContext, bot: Bot, image_flows: ImageFlows
) -> None:
    """The prompt a reference asked for (plain, or as `/imagine <prompt>`)."""
    pending = (await state.get_data()).get("reference") or {}
    refs = refs_of(pending, "images")
    kind = str(pending.get("kind") or "")
    text = message.text or ""
    command = parse_command(text, await bot_username(bot))
    if command is not None:
        text = command[1]
    if kind not in MAX_REFERENCES or not refs:
        await state.set_state(None)
        await message.reply(menu_too_old())
        return
    draft = await image_flows.draft(message, text, reference=kind, refs=len(refs))
    if draft is None:
        return  # the question stays open for a better prompt
    await state.set_state(None)
    await state.update_data(reference=None)
    await image_flows.reference(message, refs, draft, requester_of(message))


def build_router() -> Router:
    """The router for style, omni and character references."""
    router = Router(name="references")
    router.message.register(
        reference_on_photo,
        Command(*REFERENCE_COMMANDS, "ref"),
        F.reply_to_message.photo | F.reply_to_message.document,
    )
    router.message.register(reference_without_photo, Command(*REFERENCE_COMMANDS, "ref"), F.text)
    router.message.register(reference_prompt, Flow.reference, Command("imagine"))
    router.message.register(reference_prompt, Flow.reference, F.text, ~F.text.startswith("/"))
    router.message.register(
        reference_captioned, F.photo | F.document, PhotoIntent(*REFERENCE_COMMANDS)
    )
    return router
