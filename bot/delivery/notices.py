"""The Telegram side of the local job queue: a message with the job's place, kept current."""

from __future__ import annotations

import html
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import ReplyParameters
from aiogram.utils.i18n import I18n

from bot.delivery.texts import type_label
from bot.telegram.i18n import _
from bot.telegram.ratelimit import Priority, priority
from bot.telegram.session import is_gone
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)


def queued_text(task: TaskRecord, position: int) -> str:
    """What a waiting job's message says."""
    return _("⏳ <b>{job}</b>: waiting for a free slot, number {position} in the queue.").format(
        job=html.escape(type_label(task.type)), position=position
    )


class TelegramQueueNotices:
    """Posts and edits the "waiting in the queue" message of a job (a `QueueView`).

    The notice is stored as the task's status message, so it survives a restart and, when the
    job leaves the queue, the usual status text replaces it in place.
    """

    def __init__(self, bot: Bot, i18n: I18n, repo: TaskRepo) -> None:
        self._bot = bot
        self._i18n = i18n
        self._repo = repo

    def _text(self, task: TaskRecord, position: int) -> str:
        with self._i18n.context(), self._i18n.use_locale(task.locale):
            return queued_text(task, position)

    async def queued(self, task: TaskRecord, position: int) -> None:
        """Post the job's place in the queue as its status message."""
        try:
            message = await self._bot.send_message(
                chat_id=task.chat_id,
                message_thread_id=task.thread_id,
                text=self._text(task, position),
                reply_parameters=(
                    ReplyParameters(
                        message_id=task.request_message_id, allow_sending_without_reply=True
                    )
                    if task.request_message_id is not None
                    else None
                ),
            )
        except TelegramAPIError as error:
            # The notice is a courtesy: the job runs whether the chat saw it or not.
            log.warning("Queue notice for task %d failed: %s", task.id, error.message)
            return
        await self._repo.set_status_message(task.id, message.message_id, is_photo=False)

    async def moved(self, task: TaskRecord, position: int) -> bool:
        """Edit the notice to a new place, at the lowest priority; False when it is gone."""
        if task.status_message_id is None:
            return False
        try:
            with priority(Priority.NOTICE):
                await self._bot.edit_message_text(
                    chat_id=task.chat_id,
                    message_id=task.status_message_id,
                    text=self._text(task, position),
                )
        except TelegramBadRequest as error:
            if is_gone(error):
                # The user deleted it; the job's status message will be posted anew.
                log.debug("Queue notice of task %d is gone", task.id)
                await self._repo.clear_status_message(task.id)
                return False
            log.debug("Queue notice of task %d not edited: %s", task.id, error.message)
        except TelegramAPIError as error:
            log.info("Queue notice of task %d not edited: %s", task.id, error.message)
        return True
