"""/history: a user's recent jobs in this chat, each result sendable again from its file_id."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.delivery.keyboards import result_keyboard
from bot.delivery.texts import caption_for, type_label
from bot.jobs.actions import is_animation
from bot.owner.payments import Payments
from bot.telegram.i18n import _
from bot.userapi.models import TaskStatus
from storage.credits import JobCost
from storage.tasks import TaskRecord, TaskRepo

HISTORY_SIZE = 10
PROMPT_PREVIEW = 60


class HistoryCallback(CallbackData, prefix="h1"):
    """A press of a history entry's button: send that task's result again."""

    task_id: int


def _status_word(task: TaskRecord) -> str:
    if task.status == TaskStatus.DONE:
        return "✅"
    if task.status == TaskStatus.ERROR:
        return "❌"
    return "⏳"


def cost_word(task: TaskRecord, cost: JobCost | None) -> str:
    """What a job cost in credits, as /history shows it with payments on."""
    if cost is None:
        return _("free") if task.status != "error" else _("nothing")
    if cost.state == "charge":
        return _("spent {credits}").format(credits=cost.credits)
    if cost.state == "release":
        return _("nothing ({credits} returned)").format(credits=cost.credits)
    return _("{credits} held").format(credits=cost.credits)


def history_text(tasks: list[TaskRecord], costs: dict[int, JobCost] | None = None) -> str:
    """The list of recent jobs: number, status, type, time and the start of the prompt."""
    lines = [_("<b>Your recent jobs</b>")]
    for number, task in enumerate(tasks, 1):
        when = datetime.fromtimestamp(task.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        prompt = task.prompt or ""
        if len(prompt) > PROMPT_PREVIEW:
            prompt = prompt[: PROMPT_PREVIEW - 1] + "…"
        paid = "" if costs is None else " · 💳 " + cost_word(task, costs.get(task.id))
        lines.append(
            f"{number}. {_status_word(task)} <b>{html.escape(type_label(task.type))}</b> · "
            f"{when}{paid}\n<i>{html.escape(prompt)}</i>"
        )
    return "\n\n".join(lines)


def history_keyboard(tasks: list[TaskRecord]) -> InlineKeyboardMarkup | None:
    """One button per job whose result Telegram still holds for us."""
    buttons = [
        InlineKeyboardButton(
            text=f"↩️ {number}", callback_data=HistoryCallback(task_id=task.id).pack()
        )
        for number, task in enumerate(tasks, 1)
        if task.result_file_id
    ]
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[buttons[i : i + 5] for i in range(0, len(buttons), 5)]
    )


async def show_history(message: Message, tasks: TaskRepo, payments: Payments) -> None:
    """`/history`: this chat's latest jobs, with buttons to send a result again."""
    if message.from_user is None:
        return
    # Only this chat's jobs: in a group, the user's jobs there (their private prompts stay
    # private); in a private chat, the ones they started there. A result sent again then
    # lands where its buttons belong.
    recent = await tasks.recent_in_chat(message.from_user.id, message.chat.id, HISTORY_SIZE)
    if not recent:
        await message.answer(_("No jobs yet. Start one with /imagine."))
        return
    costs = (
        await payments.credits.job_costs([task.id for task in recent])
        if payments.enabled
        else None
    )
    await message.answer(history_text(recent, costs), reply_markup=history_keyboard(recent))


async def resend(
    query: CallbackQuery, callback_data: HistoryCallback, message: Message, tasks: TaskRepo
) -> None:
    """Send a result from /history again, with its buttons."""
    task = await tasks.get(callback_data.task_id)
    if (
        task is None
        or task.user_id != query.from_user.id
        or task.chat_id != message.chat.id
        or not task.result_file_id
    ):
        await query.answer(_("This result is no longer available."), show_alert=True)
        return
    await query.answer()
    # The file_id is Telegram's own copy: Discord links in the stored result expire.
    # Message.answer_* post into the message's forum topic by themselves.
    caption, keyboard = caption_for(task), result_keyboard(task)
    if is_animation(task.result):
        await message.answer_animation(task.result_file_id, caption=caption, reply_markup=keyboard)
    else:
        await message.answer_photo(task.result_file_id, caption=caption, reply_markup=keyboard)


def build_router() -> Router:
    """The router for /history and its buttons."""
    router = Router(name="history")
    router.message.register(show_history, Command("history"))
    router.callback_query.register(resend, HistoryCallback.filter(), F.message.as_("message"))
    return router
