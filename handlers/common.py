"""Small helpers shared by handlers."""

from __future__ import annotations

from aiogram.types import Message
from aiogram.utils.i18n import get_i18n

from bot.jobs import Requester


def requester_of(message: Message, user_id: int | None = None) -> Requester:
    """Who asked and where to answer: the chat, the forum topic, and the message to reply to."""
    thread_id = message.message_thread_id if message.is_topic_message else None
    sender = user_id if user_id is not None else (message.from_user.id if message.from_user else 0)
    return Requester(
        chat_id=message.chat.id,
        user_id=sender,
        thread_id=thread_id,
        message_id=message.message_id,
        locale=get_i18n().current_locale,
    )
