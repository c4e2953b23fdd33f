"""Status messages: one per job, showing its state and progress, throttled to Telegram's pace.

A job's status message is posted when it starts (or was its queue notice), edited as progress
arrives (at most once per interval, the latest state winning), may become a photo preview, and
is removed once the result is out. Edits are best-effort and never hold up a result.

Every edit goes through one loop per task, newest state only, and through the `EditPlan`: an
edit that would change nothing, or whose message was deleted or replaced meanwhile, is never
sent.

Replicas: a task's progress reaches any of them, so the database, not a process, says which
message shows a task (and which preview), and the message is changed only in a turn
(storage/replicas/turns.py): one process at a time, reading the task as stored when its turn
begins.
A process whose turn follows another's no longer trusts what its `EditPlan` knows of the
message: at worst one edit Telegram answers "not modified", never a stale text kept.
One process alone (no Redis) is the only one changing status messages: its turns are a lock
per task, and a progress edit shows the state in hand on the message it last stored, reading
nothing (a read per edit cost PostgreSQL a fifth of its webhook ingest).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import BufferedInputFile, InputMediaPhoto, ReplyParameters
from aiogram.utils.i18n import I18n

from bot.delivery.texts import status_text
from bot.delivery.turn import StatusMessage, Turn, TurnTaken
from bot.telegram.edits import Edit, EditPlan, Gone, look
from bot.telegram.ratelimit import Priority, priority
from bot.userapi import UserAPIClient, UserAPIError
from storage.replicas.turns import TURN_SECONDS
from storage.tasks import TaskRecord, TaskRepo, status_rank

log = logging.getLogger(__name__)

PREVIEW_MAX_BYTES = 5 * 1024 * 1024
# How often a turn another process holds is asked for again (turns last one edit or post), by
# those that must wait for it (a start, a result's removal); a progress edit does not wait.
TURN_POLL = 0.2
# A holder sends nothing this close to its turn's expiry: by then another may have taken it.
TURN_MARGIN = 5.0


@contextmanager
def speaking(i18n: I18n, task: TaskRecord) -> Iterator[None]:
    """Texts inside speak the requester's language (updates come from outside any handler)."""
    with i18n.context(), i18n.use_locale(task.locale):
        yield


def reply_to(task: TaskRecord) -> dict[str, Any]:
    """Where a message about a task goes: its chat (and topic), replying to the request."""
    kwargs: dict[str, Any] = {"chat_id": task.chat_id}
    if task.thread_id is not None:
        kwargs["message_thread_id"] = task.thread_id
    if task.request_message_id is not None:
        kwargs["reply_parameters"] = ReplyParameters(
            message_id=task.request_message_id, allow_sending_without_reply=True
        )
    return kwargs


class ProgressMessages:
    """Posts, edits and removes jobs' status messages."""

    def __init__(
        self,
        bot: Bot,
        repo: TaskRepo,
        client: UserAPIClient,
        i18n: I18n,
        edit_interval: float,
        edits: EditPlan,
        *,
        shared: bool = True,
    ) -> None:
        self._bot = bot
        # Replicas (Redis configured) take turns in the database; one process alone takes them
        # in memory: a lock per task, no writes for each edit.
        self._shared = shared
        self._locks: dict[int, asyncio.Lock] = {}
        # One process alone: the message showing each task, as it last stored it. Only this
        # process changes it, so a progress edit needs no read of the task (it has the newest
        # state in hand) to know which message to edit.
        self._shown: dict[int, StatusMessage] = {}
        self.edits = edits
        self._repo = repo
        self._client = client
        self._i18n = i18n
        self._edit_interval = edit_interval
        # The newest state waiting to be shown, and the edit loop showing it, per task.
        self._latest: dict[int, TaskRecord] = {}
        # How far the newest state taken for showing had come (status rank, progress): an
        # older record (a start noticed late) must not be shown over it.
        self._reached: dict[int, tuple[int, int]] = {}
        self._flush: dict[int, asyncio.Task[None]] = {}
        self._last_edit: dict[int, float] = {}
        # The number of this process's last turn per task: the next one tells whether
        # another process had a turn in between.
        self._turns: dict[int, int] = {}
        # Tasks whose edit loop is posting a new status message (cut off midway, the message
        # could exist with nobody knowing its id), and tasks whose outcome is being sent.
        self._posting: set[int] = set()
        self._ending: set[int] = set()

    @asynccontextmanager
    async def turn(
        self, task_id: int, known: TaskRecord | None = None, *, wait: bool = True
    ) -> AsyncIterator[Turn]:
        """Wait for, and hold, the turn to change a task's status message.

        `known`: the task's newest state in hand, which one process alone takes instead of
        reading the task again (replicas read it as the turn begins). Without `wait`, a turn
        another process holds raises `TurnTaken` at once.
        """
        if not self._shared:
            async with self._locks.setdefault(task_id, asyncio.Lock()):
                task = known if known is not None else await self._repo.require(task_id)
                turn = Turn(task, 0, float("inf"))
                if task_id in self._shown:
                    turn.status = self._shown[task_id]
                yield turn
            return
        task = await self._take_turn(task_id, wait)
        number = task.status_turn
        ends = time.monotonic() + TURN_SECONDS - TURN_MARGIN
        try:
            turn = Turn(task, number, ends)
            if turn.status is not None and self._turns.get(task_id) != number - 1:
                # Another process may have edited it since this one last did.
                self.edits.unsure(turn.task.chat_id, turn.status.message_id)
            self._turns[task_id] = number
            yield turn
        finally:
            await self._repo.end_status_turn(task_id, number)

    async def _take_turn(self, task_id: int, wait: bool) -> TaskRecord:
        """Take a task's turn (the task as it is then), asking again while another holds it."""
        while True:
            row = await self._repo.take_status_turn(task_id)
            if row is not None:
                return TaskRecord.from_row(row)
            if not wait:
                raise TurnTaken(task_id)
            await asyncio.sleep(TURN_POLL)

    async def _keep(self, turn: Turn, status: StatusMessage) -> bool:
        """Store the message showing the task now; False if the turn ended before that."""
        kept = await self._repo.set_status_message(
            turn.task.id,
            status.message_id,
            is_photo=status.is_photo,
            preview=status.preview,
            turn=turn.number if self._shared else None,
        )
        if kept:
            turn.status = status
            if not self._shared:
                self._shown[turn.task.id] = status
        return kept

    async def _post(self, turn: Turn, message_id: int, *, preview: str | None = None) -> bool:
        """Make a just-sent message the status message; False (and it goes) if too late."""
        if await self._keep(turn, StatusMessage(message_id, preview is not None, preview)):
            return True
        # Another process's turn began, reading the old message: this one is nobody's.
        await self.delete(turn.task.chat_id, message_id)
        return False

    async def started(self, task: TaskRecord) -> None:
        """Show the status message that progress will edit (the queue notice becomes it)."""
        async with self.turn(task.id) as turn:
            task = turn.task
            if task.is_final:
                return
            if turn.status is None:
                await self._post_status(turn)
                return
        # The queue notice: it turns into the status through the progress loop, the one
        # path that edits it, so this never races a progress edit (or follows one late).
        await self.progress(task)

    async def _post_status(self, turn: Turn) -> None:
        """Post the first status message of a task."""
        task = turn.task
        with speaking(self._i18n, task):
            text = status_text(task)
        try:
            message = await self._bot.send_message(text=text, **reply_to(task))
        except TelegramForbiddenError as error:
            log.warning("Can't post a status message in chat %d: %s", task.chat_id, error)
            return
        self.edits.sent(task.chat_id, message.message_id, look(text))
        self._reached[task.id] = (status_rank(task.status), task.progress)
        await self._post(turn, message.message_id)
        self._last_edit[task.id] = time.monotonic()

    async def progress(self, task: TaskRecord) -> None:
        """Record the newest state; an edit follows within the throttle interval."""
        reached = (status_rank(task.status), task.progress)
        if task.id in self._ending or reached <= self._reached.get(task.id, (-1, -1)):
            return  # the job ended, or a newer state is shown or on its way
        self._reached[task.id] = reached
        self._latest[task.id] = task
        if task.id not in self._flush:
            self._flush[task.id] = asyncio.create_task(self._edit_loop(task.id))

    async def _edit_loop(self, task_id: int) -> None:
        """Show a task's latest state, at most one edit per interval, until none is new."""
        # The loop stays in `_flush` until it ends, so that `job_finished` and `close` find an
        # edit under way, not only one that waits.
        try:
            while task_id in self._latest:
                wait = self._last_edit.get(task_id, 0.0) + self._edit_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                task = self._latest.pop(task_id, None)
                if task is None:
                    return
                self._last_edit[task_id] = time.monotonic()
                await self._edit(task)
        finally:
            if self._flush.get(task_id) is asyncio.current_task():
                del self._flush[task_id]

    async def _edit(self, task: TaskRecord) -> None:
        """One progress edit, of the newest state; best-effort: failures are logged."""
        task_id = task.id
        try:
            # Not waiting: another replica's turn may last while its edit waits for a slot
            # (seconds, behind results), and asking the database five times a second per task
            # cost PostgreSQL more than everything else in a backlog of results.
            async with self.turn(task_id, task, wait=False) as turn:
                if turn.task.is_final:
                    # Whoever delivers it removes the status message; nothing more is shown.
                    self._drop(task_id)
                    return
                if task_id not in self._ending:
                    await self._edit_in(turn)
        except TurnTaken:
            # The other replica is showing the task; this state is shown an interval later
            # (it is stored: whoever edits then reads it), unless a newer one comes first.
            if task_id not in self._ending:
                self._latest.setdefault(task_id, task)
            await asyncio.sleep(TURN_POLL)  # however short the interval, not sooner than this
        except TelegramBadRequest as error:
            log.debug("Progress edit for task %d skipped: %s", task_id, error.message)
        except (TelegramAPIError, UserAPIError) as error:
            # Telegram refused for good, or the preview could not be fetched: the next state
            # (or the result) will show instead.
            log.info("Progress edit for task %d failed: %s", task_id, error)

    async def _edit_in(self, turn: Turn) -> None:
        task, status = turn.task, turn.status
        with speaking(self._i18n, task), priority(Priority.PROGRESS):
            shown = await self._show_progress(turn)
        if (
            shown is Edit.GONE
            and status is not None
            and self.edits.gone(task.chat_id, status.message_id) is Gone.MISSING
            and turn.status == status
            and task.id not in self._ending
        ):
            # The user deleted it; a message the bot removed itself is not posted again.
            await self._status_anew(turn)

    async def _status_anew(self, turn: Turn) -> None:
        """The status message was deleted: post a fresh one so progress stays visible."""
        task = turn.task
        self._posting.add(task.id)
        try:
            with speaking(self._i18n, task), priority(Priority.PROGRESS):
                text = status_text(task)
                message = await self._bot.send_message(text=text, **reply_to(task))
            self.edits.sent(task.chat_id, message.message_id, look(text))
            await self._post(turn, message.message_id)
        except (TelegramBadRequest, TelegramForbiddenError) as error:
            log.debug("No new status message for task %d: %s", task.id, error.message)
        finally:
            self._posting.discard(task.id)

    async def _show_progress(self, turn: Turn) -> Edit | None:
        """Show a state on the status message; what became of the edit (None: a new message)."""
        task, status = turn.task, turn.status
        preview = task.result.get("url") if isinstance(task.result, dict) else None
        if preview and (status is None or preview != status.preview):
            data = await self._client.fetch(preview, max_bytes=PREVIEW_MAX_BYTES)
            photo = BufferedInputFile(data, filename="preview.png")
            caption = status_text(task)
            if status and status.is_photo:
                shown = await self.edits.edit_media(
                    task.chat_id,
                    status.message_id,
                    InputMediaPhoto(media=photo, caption=caption),
                    still=turn.lasts,
                )
                if shown is Edit.SHOWN:
                    await self._keep(turn, StatusMessage(status.message_id, True, preview))
                return shown
            self._posting.add(task.id)
            try:
                message = await self._bot.send_photo(
                    photo=photo, caption=caption, **reply_to(task)
                )
                self.edits.sent(task.chat_id, message.message_id, look(caption))
                if await self._post(turn, message.message_id, preview=preview) and status:
                    # Replaced by the preview: no edit goes to the text any more.
                    await self.delete(task.chat_id, status.message_id)
            finally:
                self._posting.discard(task.id)
            return None
        if status is None:
            return None
        if status.is_photo:
            return await self.edits.edit_caption(
                task.chat_id, status.message_id, status_text(task), still=turn.lasts
            )
        return await self.edits.edit_text(
            task.chat_id, status.message_id, status_text(task), still=turn.lasts
        )

    def stop(self, task_id: int) -> asyncio.Task[None] | None:
        """No more progress for a finished task; return its edit loop, if one runs."""
        # The loop is cancelled, unless it is posting a new status message: that one is left
        # to land, so its id is stored when the status message is removed.
        self._ending.add(task_id)
        self._latest.pop(task_id, None)
        loop = self._flush.get(task_id)
        if loop is not None and task_id not in self._posting:
            loop.cancel()
        return loop

    def forget(self, task_id: int) -> None:
        """Drop what was kept for a finished task's progress."""
        self._ending.discard(task_id)
        self._drop(task_id)

    def _drop(self, task_id: int) -> None:
        self._reached.pop(task_id, None)
        self._last_edit.pop(task_id, None)
        self._turns.pop(task_id, None)
        self._locks.pop(task_id, None)
        self._shown.pop(task_id, None)

    async def delete(self, chat_id: int, message_id: int) -> None:
        """Remove a status message (best-effort: it may be gone already)."""
        try:
            await self.edits.delete(chat_id, message_id)
        except TelegramAPIError as error:
            # A status message left behind is a blemish; failing here would send the result
            # it gives way to again.
            log.info("Status message %d not deleted: %s", message_id, error)

    async def close(self) -> None:
        """Cancel progress edits, waiting or under way (their jobs resume after a restart)."""
        pending = list(self._flush.values())
        for loop in pending:
            loop.cancel()
        if pending:
            await asyncio.wait(pending)
