"""Vary (Region) without the Mini App: a mask image, then the prompt for the painted area."""

from __future__ import annotations

import html

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import ForceReply, Message

from bot.telegram.i18n import _
from bot.telegram.uploads import ImageProblem, ImageRef, build_mask, download
from bot.web.region import can_inpaint, start_inpaint, upscale_size
from handlers.common import requester_of
from handlers.images.common import (
    PLACEHOLDER_LIMIT,
    Flow,
    PhotoIntent,
    Photos,
    job_gone,
    problem_text,
)
from handlers.images.flows import ImageFlows
from storage.tasks import TaskRepo


async def take_mask(
    message: Message, photos: Photos, state: FSMContext, bot: Bot, tasks: TaskRepo
) -> None:
    """The mask image Vary (Region) asked for: check it now, then ask for the prompt."""
    first = photos.first
    data = await state.get_data()
    task = await tasks.get(int(data.get("region_task") or 0))
    size = upscale_size(task) if task is not None else None
    if task is None or size is None or not can_inpaint(task):
        await state.set_state(None)
        await first.reply(job_gone())
        return
    try:
        raw = await download(bot, photos.refs[0])
        await build_mask(raw, *size)  # refused now, not after the prompt
    except ImageProblem as problem:
        await first.reply(problem_text(problem))
        return
    await state.set_state(Flow.mask_prompt)
    await state.update_data(region_mask=photos.refs[0].to_dict())
    prefill = task.prompt or ""
    await first.reply(
        _(
            "✏️ <b>Vary (Region)</b>: reply with the prompt for the painted area.\n"
            "The current one, to copy and edit:\n<code>{prompt}</code>"
        ).format(prompt=html.escape(prefill)),
        reply_markup=ForceReply(
            selective=True, input_field_placeholder=prefill[:PLACEHOLDER_LIMIT] or None
        ),
    )


async def text_instead_of_mask(message: Message) -> None:
    """Text where the mask image was asked for."""
    await message.reply(
        _(
            "Please send the mask as an image (white = redraw, black = keep). "
            "Send /imagine to start something else."
        )
    )


async def mask_prompt(
    message: Message, state: FSMContext, tasks: TaskRepo, image_flows: ImageFlows
) -> None:
    """The prompt for the painted area: start Vary (Region) with the mask."""
    data = await state.get_data()
    task = await tasks.get(int(data.get("region_task") or 0))
    mask_ref = data.get("region_mask")
    size = upscale_size(task) if task is not None else None
    if not can_inpaint(task) or not isinstance(mask_ref, dict) or task is None or not size:
        await state.set_state(None)
        await message.reply(job_gone())
        return
    draft = await image_flows.draft(message, message.text)
    if draft is None:
        return
    # The mask was checked when it came; it is made again from Telegram's copy now, so
    # no image waits in the stored state (which outlives a restart).
    try:
        mask = await build_mask(
            await download(image_flows.bot, ImageRef.from_dict(mask_ref)), *size
        )
    except ImageProblem as problem:
        await message.reply(problem_text(problem))
        return
    await state.set_state(None)
    await state.update_data(region_task=None, region_mask=None)
    await start_inpaint(
        image_flows.jobs, requester_of(message), task, mask_png=mask, prompt=draft.words
    )


def build_router() -> Router:
    """The router for the mask and the prompt Vary (Region) asks for."""
    router = Router(name="region")
    router.message.register(take_mask, F.photo | F.document, PhotoIntent("mask"))
    router.message.register(text_instead_of_mask, Flow.mask, F.text, ~F.text.startswith("/"))
    router.message.register(mask_prompt, Flow.mask_prompt, F.text, ~F.text.startswith("/"))
    return router
