"""Helpers shared by several routers (no router here): who asked, who may press, names."""

from __future__ import annotations

import html

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, User
from aiogram.utils.i18n import get_i18n

from bot.jobs.values import Requester
from bot.owner.limits import Policy
from bot.telegram.i18n import _
from storage.tasks import TaskRecord

# Commands a disabled group still hears, so it can be switched back on.
GROUP_COMMANDS = ("bot_on", "bot_off", "group_limit", "group_buttons")
CHAT_ADMIN_STATUSES = ("creator", "administrator")


def display_name(user: User | None) -> str | None:
    """How a person is named under their results in groups."""
    if user is None:
        return None
    return f"{user.full_name} (@{user.username})" if user.username else user.full_name


def requester_of(message: Message, by: User | None = None) -> Requester:
    """Who asked (`by`, else the message's sender) and where to answer: chat, topic, message."""
    thread_id = message.message_thread_id if message.is_topic_message else None
    sender = by or message.from_user
    return Requester(
        chat_id=message.chat.id,
        user_id=sender.id if sender else 0,
        thread_id=thread_id,
        message_id=message.message_id,
        locale=get_i18n().current_locale,
        name=display_name(sender),
    )


def shown_here(query: CallbackQuery, message: Message, task: TaskRecord) -> bool:
    """Whether a press names a task of the chat, and the message, it was pressed in.

    Callback data comes from the client and can name any task; the message comes from
    Telegram. A task from another chat is refused outright. In its own chat the press must
    come from the task's status or result message, or from a message that really carries
    this button (a result sent again from /history has a message id of its own).
    """
    if task.chat_id != message.chat.id:
        return False
    if message.message_id in (task.result_message_id, task.status_message_id):
        return True
    markup = message.reply_markup
    shown = (
        {button.callback_data for row in markup.inline_keyboard for button in row}
        if markup
        else set()
    )
    return query.data is not None and query.data in shown


def not_here() -> str:
    """The alert for a press whose data names a job this message doesn't show."""
    return _("This button doesn't belong to this message.")


def command_name(text: str | None) -> str | None:
    """The command a message starts with (`/bot_on@name x` -> `bot_on`), if any."""
    if not text or not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else None


async def is_chat_admin(bot: Bot, chat_id: int, user_id: int) -> bool:
    """Whether the user administers this group (Telegram's own admins)."""
    if chat_id > 0:
        return False
    try:
        member = await bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    except TelegramAPIError:
        return False
    return member.status in CHAT_ADMIN_STATUSES


async def may_press(query: CallbackQuery, task: TaskRecord, policy: Policy) -> bool:
    """Whether this user may press a job's buttons: its requester, admins, or anyone if allowed."""
    user_id = query.from_user.id
    if user_id == task.user_id or policy.is_admin(user_id):
        return True
    if task.chat_id < 0:
        if (await policy.access.chat(task.chat_id)).anyone_presses:
            return True
        if query.bot is not None and await is_chat_admin(query.bot, task.chat_id, user_id):
            return True
    return False


def not_yours() -> str:
    """The alert for pressing someone else's buttons."""
    return _("These buttons belong to the person who started this job.")


def describe_user(first_name: str | None, username: str | None, user_id: int) -> str:
    """A user as admins read them: name, @username, id."""
    parts = [html.escape(first_name or "?")]
    if username:
        parts.append(f"@{html.escape(username)}")
    parts.append(f"<code>{user_id}</code>")
    return " ".join(parts)
