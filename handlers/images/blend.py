"""/blend: photos collected one by one or as an album, then blended with the Blend button."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.telegram.i18n import _
from handlers.common import requester_of
from handlers.images.common import (
    MAX_BLEND,
    MIN_BLEND,
    Flow,
    ImageMenu,
    PhotoIntent,
    Photos,
    blend_count_problem,
    blend_panel,
    pressed_menu,
    refs_of,
    remove_keyboard,
)
from handlers.images.flows import ImageFlows


async def blend_command(message: Message, state: FSMContext) -> None:
    """`/blend`: start collecting photos."""
    await state.set_state(Flow.blend)
    await state.update_data(blend=[])
    text, keyboard = blend_panel(0)
    await message.reply(text, reply_markup=keyboard)


async def blend_album(
    message: Message,
    photos: Photos,
    image_flows: ImageFlows,
) -> None:
    """Photos (an album) captioned /blend: blend them at once."""
    await image_flows.blend(photos.first, photos.refs, requester_of(photos.first))


async def add_to_blend(message: Message, photos: Photos, state: FSMContext) -> None:
    """A photo (or album) while a blend collects: add the new ones and show the count."""
    collected = refs_of(await state.get_data(), "blend")
    known = {ref.file_unique_id for ref in collected}
    new = [ref for ref in photos.refs if ref.file_unique_id not in known]
    if len(collected) + len(new) > MAX_BLEND:
        await photos.first.reply(
            _(
                "Blend takes at most {high} photos; these would make {count}. "
                "Press Blend, or send /blend to start over."
            ).format(high=MAX_BLEND, count=len(collected) + len(new))
        )
        return
    collected.extend(new)
    await state.update_data(blend=[ref.to_dict() for ref in collected])
    text, keyboard = blend_panel(len(collected))
    await photos.first.reply(text, reply_markup=keyboard)


async def blend_button(
    query: CallbackQuery,
    state: FSMContext,
    image_flows: ImageFlows,
) -> None:
    """The Blend button: blend what was collected."""
    message = await pressed_menu(query)
    if message is None:
        return
    refs = refs_of(await state.get_data(), "blend")
    if await state.get_state() != Flow.blend.state:
        await query.answer(_("Start a new blend with /blend."), show_alert=True)
        return
    if not MIN_BLEND <= len(refs) <= MAX_BLEND:
        await query.answer(blend_count_problem(len(refs)), show_alert=True)
        return
    await query.answer()
    await state.set_state(None)
    await state.update_data(blend=[])
    await remove_keyboard(message)
    await image_flows.blend(message, refs, requester_of(message, query.from_user))


def build_router() -> Router:
    """The router for /blend, the photos it collects and its button."""
    router = Router(name="blend")
    router.message.register(blend_command, Command("blend"), F.text)
    router.message.register(blend_album, F.photo | F.document, PhotoIntent("blend"))
    router.message.register(add_to_blend, F.photo | F.document, PhotoIntent("blend_add"))
    router.callback_query.register(blend_button, ImageMenu.filter(F.do == "blend"))
    return router
