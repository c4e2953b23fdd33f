"""The Telegram side of the local job queue: a message with the job's place, kept current."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ReplyParameters
from aiogram.utils.i18n import I18n

from bot.delivery.texts import type_label
from bot.telegram.edits import Edit, EditPlan, Gone, look
from bot.telegram.i18n import _
from bot.telegram.ratelimit import Priority, priority
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

    def __init__(self, bot: Bot, i18n: I18n, repo: TaskRepo, edits: EditPlan) -> None:
        """`edits` is the status messages' own (`TelegramView.edits`): a notice becomes one."""
        self._bot = bot
        self._i18n = i18n
        self._repo = repo
        self._edits = edits

    def _text(self, task: TaskRecord, position: int) -> str:
        with self._i18n.context(), self._i18n.use_locale(task.locale):
            return queued_text(task, position)

    async def queued(self, task: TaskRecord, position: int) -> None:
        """Post the job's place in the queue as its status message."""
        text = self._text(task, position)
        try:
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
        except TelegramAPIError as error:
            # The notice is a courtesy: the job runs whether the chat saw it or not.
            log.warning("Queue notice for task %d failed: %s", task.id, error.message)
            return
        self._edits.sent(task.chat_id, message.message_id, look(text))
        await self._repo.set_status_message(task.id, message.message_id, is_photo=False)

    async def moved(self, task: TaskRecord, position: int, still: Callable[[], bool]) -> bool:
        """Edit the notice to a new place, at the lowest priority; False when it is gone.

        The edit waits for a slot behind everything else; it is dropped if, by then, `still()`
        says the job left that place (it started, or moved on).
        """
        if task.status_message_id is None:
            return False
        try:
            with priority(Priority.NOTICE):
                shown = await self._edits.edit_text(
                    task.chat_id,
                    task.status_message_id,
                    self._text(task, position),
                    still=still,
                )
        except TelegramAPIError as error:
            log.info("Queue notice of task %d not edited: %s", task.id, error.message)
            return True
        if shown is not Edit.GONE:
            return True
        if self._edits.gone(task.chat_id, task.status_message_id) is Gone.MISSING:
            # The user deleted it; the job's status message will be posted anew.
            log.debug("Queue notice of task %d is gone", task.id)
            await self._repo.clear_status_message(task.id)
        return False
