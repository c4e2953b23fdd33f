"""Button presses under results, and the prompts some of them ask for."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import or_f
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ForceReply, Message, ReplyParameters

from bot.config import Settings
from bot.delivery.keyboards import (
    ActionCallback,
    LegacyActionCallback,
    pressed_action,
    task_action_rows,
)
from bot.jobs.actions import Action, flat_actions
from bot.jobs.service import Jobs
from bot.owner.limits import Policy
from bot.prompts.translate import Translator
from bot.telegram.i18n import _
from bot.userapi import UserAPIClient
from handlers.common import may_press, not_here, not_yours, requester_of, shown_here
from handlers.images.flows import ask_region, describe_button
from handlers.images.prompting import plain_prompt
from storage.prompts import PromptRequest, PromptRequestRepo
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRecord, TaskRepo

# Telegram cuts ForceReply placeholders at 64 characters.
PLACEHOLDER_LIMIT = 64


def expired() -> str:
    """The answer to a button of a job the bot no longer has."""
    return _("This job is no longer available. Start a new one with /imagine.")


def _prefill(task: TaskRecord, action: Action) -> str:
    prompt = task.prompt or ""
    if action.kind == "custom_zoom" and "--zoom" not in prompt:
        prompt = f"{prompt} --zoom 2"
    return prompt


async def _ask_prompt(
    message: Message,
    user_id: int,
    task: TaskRecord,
    action: Action,
    prompts: PromptRequestRepo,
) -> None:
    prefill = _prefill(task, action)
    text = _(
        "✏️ <b>{action}</b>: reply to this message with the prompt.\n"
        "The current one, to copy and edit:\n<code>{prompt}</code>"
    ).format(action=html.escape(action.label), prompt=html.escape(prefill))
    # Message.answer already posts into the message's forum topic; passing it again is a TypeError.
    ask = await message.answer(
        text,
        reply_parameters=ReplyParameters(
            message_id=message.message_id, allow_sending_without_reply=True
        ),
        reply_markup=ForceReply(
            selective=True, input_field_placeholder=prefill[:PLACEHOLDER_LIMIT] or None
        ),
    )
    await prompts.add(PromptRequest(message.chat.id, ask.message_id, user_id, task.id, action.key))


@dataclass(frozen=True, slots=True)
class Press:
    """A press on a result's button that passed the checks, and what acting on it takes."""

    query: CallbackQuery
    message: Message
    task: TaskRecord
    action: Action
    jobs: Jobs
    client: UserAPIClient
    prompts: PromptRequestRepo
    state: FSMContext
    settings: Settings


async def _describe_press(press: Press) -> None:
    await describe_button(
        press.query, press.message, press.task, press.action, press.jobs, press.client
    )


async def _region_press(press: Press) -> None:
    await press.query.answer()
    await ask_region(
        press.message, press.query.from_user.id, press.task, press.state, press.settings
    )


async def _follow_up_press(press: Press) -> None:
    if await press.jobs.remix.needs_prompt(press.task, press.action):
        await press.query.answer()
        await _ask_prompt(
            press.message, press.query.from_user.id, press.task, press.action, press.prompts
        )
        return
    # Answer the press at once; the job's own status message follows.
    await press.query.answer(_("{action}: started").format(action=press.action.label))
    await press.jobs.run_action(
        requester_of(press.message, press.query.from_user), press.task, press.action
    )


# Buttons acted on in the chat; every other kind starts a follow-up job at the API.
IN_CHAT_PRESSES: dict[str, Callable[[Press], Awaitable[None]]] = {
    "imagine": _describe_press,
    "describe": _describe_press,
    "inpaint": _region_press,
}


async def on_action(
    query: CallbackQuery,
    callback_data: ActionCallback | LegacyActionCallback,
    jobs: Jobs,
    tasks: TaskRepo,
    prompts: PromptRequestRepo,
    client: UserAPIClient,
    state: FSMContext,
    settings: Settings,
    policy: Policy,
) -> None:
    """A press on a result's button: start the action, or ask for what it needs first."""
    task = await tasks.get(callback_data.task_id)
    action = pressed_action(task, callback_data) if task is not None else None
    message = query.message
    if task is None or action is None or not isinstance(message, Message):
        await query.answer(expired(), show_alert=True)
        return
    if not shown_here(query, message, task):
        await query.answer(not_here(), show_alert=True)
        return
    if not await may_press(query, task, policy):
        await query.answer(not_yours(), show_alert=True)
        return
    press = Press(query, message, task, action, jobs, client, prompts, state, settings)
    act = IN_CHAT_PRESSES.get(action.kind, _follow_up_press)
    await act(press)


async def on_prompt_reply(
    message: Message,
    jobs: Jobs,
    tasks: TaskRepo,
    prompts: PromptRequestRepo,
    user_settings: UserSettingsRepo,
    settings: Settings,
    translator: Translator | None,
) -> None:
    """A reply to a prompt question (remix, custom zoom): run the action with it."""
    replied = message.reply_to_message
    if replied is None or message.from_user is None:
        raise SkipHandler
    request = await prompts.take(message.chat.id, replied.message_id, message.from_user.id)
    if request is None:
        raise SkipHandler  # an ordinary reply: let /imagine or plain text handle it
    task = await tasks.get(request.task_id)
    action = (
        next((a for a in flat_actions(task_action_rows(task)) if a.key == request.action), None)
        if task
        else None
    )
    if task is None or action is None:
        await message.reply(expired())
        return
    prompt = await plain_prompt(
        message,
        message.text,
        config=settings,
        translator=translator,
        user_settings=user_settings,
    )
    if prompt is None:
        await prompts.add(request)  # keep the question open for a better answer
        return
    await jobs.run_action(requester_of(message), task, action, prompt)


def build_router() -> Router:
    """The router for action buttons and prompt replies."""
    router = Router(name="actions")
    router.callback_query.register(
        on_action, or_f(ActionCallback.filter(), LegacyActionCallback.filter())
    )
    router.message.register(on_prompt_reply, F.reply_to_message, F.text)
    return router
