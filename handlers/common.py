"""Small helpers shared by handlers."""

from __future__ import annotations

from aiogram.types import CallbackQuery, Message, User
from aiogram.utils.i18n import get_i18n

from bot.i18n import _
from bot.job_values import Requester
from storage.tasks import TaskRecord


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
