"""The Telegram side of the local job queue: one message with the job's place, kept current."""

from __future__ import annotations

import html
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ReplyParameters
from aiogram.utils.i18n import I18n

from bot.i18n import _
from bot.texts import type_label
from storage.tasks import TaskRecord

log = logging.getLogger(__name__)


def queued_text(task: TaskRecord, position: int) -> str:
    """What a waiting job's message says."""
    return _("⏳ <b>{job}</b>: waiting for a free slot, number {position} in the queue.").format(
        job=html.escape(type_label(task.type)), position=position
    )


class TelegramQueueNotices:
    """Sends, edits and removes the "waiting in the queue" message of a job (a `QueueView`)."""

    def __init__(self, bot: Bot, i18n: I18n) -> None:
        self._bot = bot
        self._i18n = i18n
        self._messages: dict[int, int] = {}
        self._positions: dict[int, int] = {}

    async def queued(self, task: TaskRecord, position: int) -> None:
        """Post the job's place in the queue, or edit it when it moved."""
        if self._positions.get(task.id) == position:
            return
        self._positions[task.id] = position
        with self._i18n.context(), self._i18n.use_locale(task.locale):
            text = queued_text(task, position)
        try:
            message_id = self._messages.get(task.id)
            if message_id is not None:
                await self._bot.edit_message_text(
                    chat_id=task.chat_id, message_id=message_id, text=text
                )
                return
            message = await self._bot.send_message(
                chat_id=task.chat_id,
                message_thread_id=task.thread_id,
                text=text,
                reply_parameters=(
                    ReplyParameters(
                        message_id=task.request_message_id, allow_sending_without_reply=True
                    )
                    if task.request_message_id is not None
                    else None
                ),
            )
            self._messages[task.id] = message.message_id
        except TelegramAPIError as error:
            # The queue message is a courtesy: the job runs whether the chat saw it or not.
            log.warning("Queue notice for task %d failed: %s", task.id, error.message)

    async def dequeued(self, task: TaskRecord) -> None:
        """Remove the waiting message: the job's own status message follows."""
        self._positions.pop(task.id, None)
        message_id = self._messages.pop(task.id, None)
        if message_id is None:
            return
        try:
            await self._bot.delete_message(chat_id=task.chat_id, message_id=message_id)
        except TelegramAPIError as error:
            log.debug("Queue notice of task %d not deleted: %s", task.id, error.message)
