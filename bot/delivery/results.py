"""The Telegram side of jobs: results as photos, animations, texts or failures, sent once.

Status messages and their progress edits live in bot/progress.py; this module sends what a
job ends with, and is the only place results are sent from.
"""

from __future__ import annotations

import asyncio
import html
import logging
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    FSInputFile,
    InputFile,
    Message,
    ReplyParameters,
)
from aiogram.utils.i18n import I18n
from PIL import UnidentifiedImageError

from bot.delivery.keyboards import result_keyboard
from bot.delivery.progress import ProgressMessages, reply_to, speaking
from bot.delivery.texts import (
    caption_for,
    failure_text,
    original_failed_text,
    result_unavailable_text,
    type_label,
)
from bot.delivery.turn import StatusMessage
from bot.jobs.actions import is_animation
from bot.jobs.values import Delivered, UndeliverableError
from bot.runtime.background import Background
from bot.telegram.edits import Edit, EditPlan
from bot.telegram.i18n import _
from bot.telegram.media import ImageTooLargeError, animation_to_mp4, prepare_photo
from bot.telegram.ratelimit import Priority, priority
from bot.userapi import UserAPIClient, UserAPIError
from bot.userapi.models import UPSCALED_TYPES, TaskStatus
from storage.settings import UserSettingsRepo
from storage.tasks import TaskRecord, TaskRepo

log = logging.getLogger(__name__)
T = TypeVar("T")

# Midjourney's largest files (upsamples) are ~30 MB; anything far past that is not a result.
MAX_RESULT_BYTES = 64 * 1024 * 1024
# Telegram bots may upload documents up to 50 MB.
DOCUMENT_MAX_BYTES = 50 * 1024 * 1024
# Results being downloaded and uploaded at once (streamed through disk, little memory each);
# Telegram's 30 messages/s, not this, limits how fast a backlog drains.
MEDIA_AT_ONCE = 8
# An upload is read from disk in chunks of this size, each a hop through a thread (aiofiles):
# aiogram's 64 KB made a 1 MB photo sixteen hops, each waiting its turn on a busy event loop
# while the request held one of Telegram's 30 slots a second (wire time ~85 ms -> ~40 ms
# under a two-replica backlog).
UPLOAD_CHUNK = 1024 * 1024
# Images decoded at once to be re-encoded: each holds its pixels in memory (a 4096 px upscale
# is 50 MB), so this bounds the bot's peak memory. Two keep both cores of a small host busy.
CONVERT_AT_ONCE = 2
# How long a stop waits for status messages still being removed after their results.
TIDY_GRACE = 2.0


class TelegramView:
    """Shows jobs in Telegram chats; the one place results are sent from."""

    def __init__(
        self,
        bot: Bot,
        repo: TaskRepo,
        client: UserAPIClient,
        i18n: I18n,
        *,
        edit_interval: float = 3.0,
        user_settings: UserSettingsRepo | None = None,
        shared: bool = True,
    ) -> None:
        self._bot = bot
        self._user_settings = user_settings
        self._i18n = i18n
        self._repo = repo
        self._client = client
        # What the bot's status messages and queue notices show: shared with the notices.
        self.edits = EditPlan(bot)
        self.progress = ProgressMessages(
            bot, repo, client, i18n, edit_interval, self.edits, shared=shared
        )
        self._media_slots = asyncio.Semaphore(MEDIA_AT_ONCE)
        # Status messages being removed after their results.
        self._tidying = Background()
        # Its own threads: at most CONVERT_AT_ONCE images decoded at once, and image work
        # never queues behind other users of asyncio's shared pool (nor holds them up).
        self._converter = ThreadPoolExecutor(CONVERT_AT_ONCE, thread_name_prefix="media")

    async def job_started(self, task: TaskRecord) -> None:
        """Show the status message that progress will edit (the queue notice becomes it)."""
        await self.progress.started(task)

    async def job_progress(self, task: TaskRecord) -> None:
        """Record the newest state; an edit follows within the throttle interval."""
        await self.progress.progress(task)

    async def job_finished(self, task: TaskRecord) -> Delivered:
        """Send the result (or the failure), store it as delivered, remove the status message."""
        edit = self.progress.stop(task.id)
        try:
            with speaking(self._i18n, task), priority(Priority.RESULT):
                return await self._finish(task, edit)
        except TelegramForbiddenError as error:
            raise UndeliverableError(error.message) from error
        except TelegramBadRequest as error:
            if "chat not found" in error.message.lower():
                raise UndeliverableError(error.message) from error
            raise

    async def _finish(self, task: TaskRecord, edit: asyncio.Task[None] | None) -> Delivered:
        """Send the outcome, then remove the status message (as stored: any replica's)."""
        if task.status == TaskStatus.DONE:
            # The result goes first; the status message it replaces waits.
            try:
                delivered = await self._send_outcome(task, None)
                await self._store(task, delivered)
            except BaseException:
                self.progress.forget(task.id)
                raise
            # In the background: a status turn another replica holds (or held when it died,
            # until the turn expires) must not hold up this delivery, nor those behind it.
            self._tidying.spawn(self._tidy(task, edit, delivered))
            return delivered
        # A failure is written over the status message: after the last edit, not under.
        try:
            if edit is not None:
                await asyncio.wait([edit])
            async with self.progress.turn(task.id) as turn:
                delivered = await self._send_failure(task, turn.status)
                await self._store(task, delivered)
                await self._remove_status(task, turn.status, delivered)
            return delivered
        finally:
            self.progress.forget(task.id)

    async def _tidy(
        self, task: TaskRecord, edit: asyncio.Task[None] | None, delivered: Delivered
    ) -> None:
        """Remove a delivered result's status message, once its last edit is over."""
        try:
            if edit is not None:
                await asyncio.wait([edit])
            async with self.progress.turn(task.id) as turn:
                await self._remove_status(task, turn.status, delivered)
        finally:
            self.progress.forget(task.id)

    async def _store(self, task: TaskRecord, delivered: Delivered) -> None:
        """Record the outcome as delivered the moment Telegram has it.

        Before the status message is removed (that waits for the chat's next slot): a process
        stopped or killed meanwhile leaves at worst that message, never a result sent twice.
        """
        await self._repo.mark_delivered(
            task.id, message_id=delivered.message_id, file_id=delivered.file_id
        )

    async def _remove_status(
        self, task: TaskRecord, status: StatusMessage | None, delivered: Delivered
    ) -> None:
        """Delete the status message, unless it became the outcome (a failure written over)."""
        if status and status.message_id != delivered.message_id:
            await self.progress.delete(task.chat_id, status.message_id)

    async def _send_outcome(
        self,
        task: TaskRecord,
        status: StatusMessage | None,
    ) -> Delivered:
        if task.status != TaskStatus.DONE:
            return await self._send_failure(task, status)
        result = task.result
        if isinstance(result, dict) and "seed" in result:
            return await self._send_text(
                task, f"🌱 Seed: <code>{html.escape(str(result['seed']))}</code>"
            )
        if isinstance(result, dict) and "url" in result:
            try:
                return await self._send_media(task, result)
            except (UserAPIError, ImageTooLargeError, UnidentifiedImageError) as error:
                if isinstance(error, UserAPIError) and error.retryable:
                    raise  # the host may be back later: the next sweep tries again
                # Asking again would fail the same way (a refused or expired link, an image
                # past the pixel limit): say so once, with the buttons, which still work.
                log.warning("Result of task %d can't be fetched: %s", task.id, error)
                return await self._send_text(task, result_unavailable_text(task))
        if isinstance(result, list):
            lines = "\n\n".join(f"{n}. {html.escape(str(p))}" for n, p in enumerate(result, 1))
            header = html.escape(type_label(task.type))
            return await self._send_text(task, f"<b>{header}</b>\n\n{lines}")
        return await self._send_text(
            task, f"<b>{html.escape(type_label(task.type))}</b>: {html.escape(str(result))}"
        )

    async def _send_failure(
        self,
        task: TaskRecord,
        status: StatusMessage | None,
    ) -> Delivered:
        text = failure_text(task)
        if status and not status.is_photo:
            try:
                shown = await self.edits.edit_text(task.chat_id, status.message_id, text)
            except TelegramBadRequest as error:
                log.debug("Failure shown as a new message: %s", error.message)
            else:
                # Unchanged: already showing exactly this (a resend after a lost answer).
                if shown in (Edit.SHOWN, Edit.UNCHANGED):
                    return Delivered(status.message_id, None)
                # The status message is gone: say it anew.
        return await self._send_text(task, text)

    async def _send_text(self, task: TaskRecord, text: str) -> Delivered:
        message = await self._bot.send_message(
            text=text, reply_markup=result_keyboard(task), **reply_to(task)
        )
        return Delivered(message.message_id, None)

    async def _send_media(self, task: TaskRecord, result: dict[str, Any]) -> Delivered:
        # Download and upload ourselves: Telegram fetches at most 5 MB photos by URL, and
        # Discord links expire; the file_id we get back is what we keep. The file goes through
        # disk, so a backlog of big results costs disk space, not memory.
        async with self._media_slots:
            with tempfile.TemporaryDirectory(prefix="mjbot-") as folder:
                return await self._send_media_via(Path(folder), task, result)

    async def _send_media_via(
        self, folder: Path, task: TaskRecord, result: dict[str, Any]
    ) -> Delivered:
        # The API's filename is only shown to the user, never used as a path.
        source = folder / "result"
        with source.open("wb") as sink:
            size = await self._client.download(
                str(result["url"]), sink, max_bytes=MAX_RESULT_BYTES
            )
        filename = str(result.get("filename") or "result.png").rsplit("/", 1)[-1]
        keyboard = result_keyboard(task)
        caption = caption_for(task)
        if is_animation(result):
            video = folder / "animation.mp4"
            await self._convert(animation_to_mp4, source, video)
            message = await self._bot.send_animation(
                animation=_upload(video, "animation.mp4"),
                caption=caption,
                reply_markup=keyboard,
                **reply_to(task),
            )
            file_id = message.animation.file_id if message.animation else None
            return Delivered(message.message_id, file_id)
        photo = await self._convert(prepare_photo, source, filename, folder)
        message = await self._bot.send_photo(
            photo=_upload(photo.path, photo.filename),
            caption=caption,
            reply_markup=keyboard,
            **reply_to(task),
        )
        delivered = Delivered(message.message_id, _photo_file_id(message))
        if (
            task.type in UPSCALED_TYPES
            and size <= DOCUMENT_MAX_BYTES
            and (photo.compressed or await self._wants_originals(task.user_id))
        ):
            # A shrunk upscale is wanted at full quality; some users want every original. The
            # photo is what was asked for: stored as delivered first, so nothing that happens
            # to the extra file can send it again.
            await self._store(task, delivered)
            await self._send_original(task, message, _upload(source, filename))
        return delivered

    async def _convert(self, work: Callable[..., T], *args: Any) -> T:
        """Run image work on the media threads."""
        return await asyncio.get_running_loop().run_in_executor(self._converter, work, *args)

    async def _send_original(
        self, task: TaskRecord, photo_message: Message, original: InputFile
    ) -> None:
        """Send an upscale's file under its photo; if it can't go, say so (the photo stays)."""
        kwargs = reply_to(task)
        kwargs["reply_parameters"] = ReplyParameters(
            message_id=photo_message.message_id, allow_sending_without_reply=True
        )
        try:
            await self._bot.send_document(document=original, caption=_("Original file"), **kwargs)
        except TelegramForbiddenError as error:
            log.warning("Original of task %d not sent: %s", task.id, error.message)
        except TelegramAPIError as error:
            log.warning("Original of task %d not sent: %s", task.id, error)
            try:
                await self._bot.send_message(text=original_failed_text(), **kwargs)
            except TelegramAPIError as again:
                log.warning("Nor could task %d's chat be told: %s", task.id, again)

    async def close(self) -> None:
        """Cancel progress edits, waiting or under way (their jobs resume after a restart)."""
        # Status messages still to be removed get a moment; one left behind is a blemish.
        await self._tidying.drain(TIDY_GRACE)
        await self.progress.close()
        self._converter.shutdown(wait=False, cancel_futures=True)

    async def _wants_originals(self, user_id: int) -> bool:
        if self._user_settings is None:
            return False
        return (await self._user_settings.get(user_id)).originals

    async def show_again(self, task: TaskRecord) -> None:
        """Show a finished task's outcome once more (e.g. a repeated 🌱 Seed press)."""
        with speaking(self._i18n, task):
            await self._send_outcome(task, None)


def _photo_file_id(message: Message) -> str | None:
    return message.photo[-1].file_id if message.photo else None


def _upload(path: Path, filename: str) -> FSInputFile:
    """A file on disk to upload, read in big chunks (see UPLOAD_CHUNK)."""
    return FSInputFile(path, filename=filename, chunk_size=UPLOAD_CHUNK)
