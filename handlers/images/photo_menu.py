"""A photo with no command in a private chat: the menu of what to do with it, and its presses."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ForceReply, Message

from bot.telegram.i18n import _
from bot.telegram.uploads import ImageProblem
from handlers.common import requester_of
from handlers.images.common import (
    MAX_BLEND,
    MAX_REFERENCES,
    Flow,
    ImageMenu,
    PhotoIntent,
    Photos,
    blend_panel,
    menu_too_old,
    pressed_menu,
    problem_text,
    refs_of,
    remove_keyboard,
)
from handlers.images.flows import ImageFlows, ask_reference, offer_menu


async def show_menu(message: Message, photos: Photos, state: FSMContext) -> None:
    """A private photo (or album) with no command or waiting flow: ask what to do."""
    await offer_menu(photos.first, photos.refs, state)


async def not_an_image(message: Message, photos: Photos) -> None:
    """A file meant for us that is not an image."""
    await photos.first.reply(problem_text(ImageProblem("not_image")))


async def on_menu(
    query: CallbackQuery,
    callback_data: ImageMenu,
    state: FSMContext,
    image_flows: ImageFlows,
) -> None:
    """A press on the photo menu: describe, image prompt, a reference, or blend with more."""
    message = await pressed_menu(query)
    if message is None:
        return
    refs = refs_of((await state.get_data()).get("menus", {}), str(message.message_id))
    if not refs:
        await query.answer(menu_too_old())
        return
    await query.answer()
    await remove_keyboard(message)
    if callback_data.do == "describe":
        await image_flows.describe(message, refs[0], requester_of(message, query.from_user))
    elif callback_data.do == "prompt":
        await state.set_state(Flow.image_prompt)
        await state.update_data(prompt_images=[ref.to_dict() for ref in refs])
        await message.answer(
            _("Send the prompt to go with this image."),
            reply_markup=ForceReply(
                selective=True, input_field_placeholder=_("a castle in the clouds")
            ),
        )
    elif callback_data.do in MAX_REFERENCES:
        await ask_reference(message, callback_data.do, refs, state)
    else:
        await state.set_state(Flow.blend)
        await state.update_data(blend=[ref.to_dict() for ref in refs][:MAX_BLEND])
        text, keyboard = blend_panel(len(refs))
        await message.answer(text, reply_markup=keyboard)


def build_router() -> Router:
    """The router for the private photo menu (and files that are not images)."""
    router = Router(name="photo-menu")
    router.message.register(show_menu, F.photo | F.document, PhotoIntent("menu"))
    router.message.register(not_an_image, F.photo | F.document, PhotoIntent("not_image"))
    router.callback_query.register(on_menu, ImageMenu.filter(F.do != "blend"))
    return router
