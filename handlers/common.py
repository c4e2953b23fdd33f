"""Small helpers shared by handlers."""

from __future__ import annotations

from aiogram.types import Message, User
from aiogram.utils.i18n import get_i18n

from bot.jobs import Requester


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
