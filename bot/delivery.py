"""The Telegram side of jobs: status messages, throttled progress, and results as photos."""

from __future__ import annotations

import asyncio
import html
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import (
    BufferedInputFile,
    FSInputFile,
    InputFile,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from aiogram.utils.i18n import I18n

from bot.actions import is_animation
from bot.i18n import _
from bot.jobs import Delivered, UndeliverableError
from bot.keyboards import result_keyboard
from bot.media import animation_to_mp4, prepare_photo
from bot.ratelimit import Priority, priority
from bot.telegram import is_gone
from bot.texts import caption_for, failure_text, status_text, type_label
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
PREVIEW_MAX_BYTES = 5 * 1024 * 1024
# Results being downloaded and uploaded at once (streamed through disk, little memory each);
# Telegram's 30 messages/s, not this, limits how fast a backlog drains.
MEDIA_AT_ONCE = 8
# Images decoded at once to be re-encoded: each holds its pixels in memory (a 4096 px upscale
# is 50 MB), so this bounds the bot's peak memory. Two keep both cores of a small host busy.
CONVERT_AT_ONCE = 2


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
    ) -> None:
        self._bot = bot
        self._user_settings = user_settings
        self._i18n = i18n
        self._repo = repo
        self._client = client
        self._edit_interval = edit_interval
        self._latest: dict[int, TaskRecord] = {}
        self._flush: dict[int, asyncio.Task[None]] = {}
        self._last_edit: dict[int, float] = {}
        # The status message may move (text -> photo preview); this is the current one.
        self._status: dict[int, tuple[int, bool]] = {}
        self._preview_url: dict[int, str] = {}
        # Tasks whose edit loop is posting a new status message (cut off midway, the message
        # could exist with nobody knowing its id), and tasks whose outcome is being sent.
        self._posting: set[int] = set()
        self._ending: set[int] = set()
        self._media_slots = asyncio.Semaphore(MEDIA_AT_ONCE)
        # Its own threads: at most CONVERT_AT_ONCE images decoded at once, and image work
        # never queues behind other users of asyncio's shared pool (nor holds them up).
        self._converter = ThreadPoolExecutor(CONVERT_AT_ONCE, thread_name_prefix="media")

    @contextmanager
    def _speaking(self, task: TaskRecord) -> Iterator[None]:
        """Texts inside speak the requester's language (updates come from outside any handler)."""
        with self._i18n.context(), self._i18n.use_locale(task.locale):
            yield

    def _reply(self, task: TaskRecord) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"chat_id": task.chat_id}
        if task.thread_id is not None:
            kwargs["message_thread_id"] = task.thread_id
        if task.request_message_id is not None:
            kwargs["reply_parameters"] = ReplyParameters(
                message_id=task.request_message_id, allow_sending_without_reply=True
            )
        return kwargs

    def _status_of(self, task: TaskRecord) -> tuple[int, bool] | None:
        if task.id in self._status:
            return self._status[task.id]
        if task.status_message_id is not None:
            return task.status_message_id, task.status_is_photo
        return None

    async def _set_status(self, task: TaskRecord, message_id: int, *, is_photo: bool) -> None:
        self._status[task.id] = (message_id, is_photo)
        await self._repo.set_status_message(task.id, message_id, is_photo=is_photo)

    async def job_started(self, task: TaskRecord) -> None:
        """Show the status message that progress will edit (the queue notice becomes it)."""
        with self._speaking(task):
            text = status_text(task)
        if task.status_message_id is not None:
            try:
                await self._bot.edit_message_text(
                    chat_id=task.chat_id, message_id=task.status_message_id, text=text
                )
            except TelegramBadRequest as error:
                if not is_gone(error):
                    log.debug("Status of task %d not shown: %s", task.id, error.message)
                    return
            else:
                self._last_edit[task.id] = time.monotonic()
                return
        try:
            message = await self._bot.send_message(text=text, **self._reply(task))
        except TelegramForbiddenError as error:
            log.warning("Can't post a status message in chat %d: %s", task.chat_id, error)
            return
        await self._set_status(task, message.message_id, is_photo=False)
        self._last_edit[task.id] = time.monotonic()

    async def job_progress(self, task: TaskRecord) -> None:
        """Record the newest state; an edit follows within the throttle interval."""
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
        """One progress edit; best-effort, so its failures are logged, not raised."""
        try:
            with self._speaking(task), priority(Priority.PROGRESS):
                await self._show_progress(task)
        except TelegramBadRequest as error:
            if is_gone(error) and task.id not in self._ending:
                await self._status_anew(task)
            else:
                # "not modified" and the like: progress is best-effort.
                log.debug("Progress edit for task %d skipped: %s", task.id, error.message)
        except (TelegramAPIError, UserAPIError) as error:
            # Telegram refused for good, or the preview could not be fetched: the next state
            # (or the result) will show instead.
            log.info("Progress edit for task %d failed: %s", task.id, error)

    async def _status_anew(self, task: TaskRecord) -> None:
        """The status message was deleted: post a fresh one so progress stays visible."""
        self._status.pop(task.id, None)
        self._preview_url.pop(task.id, None)
        self._posting.add(task.id)
        try:
            with self._speaking(task), priority(Priority.PROGRESS):
                message = await self._bot.send_message(text=status_text(task), **self._reply(task))
            await self._set_status(task, message.message_id, is_photo=False)
        except (TelegramBadRequest, TelegramForbiddenError) as error:
            log.debug("No new status message for task %d: %s", task.id, error.message)
        finally:
            self._posting.discard(task.id)

    async def _show_progress(self, task: TaskRecord) -> None:
        status = self._status_of(task)
        preview = task.result.get("url") if isinstance(task.result, dict) else None
        if preview and preview != self._preview_url.get(task.id):
            self._preview_url[task.id] = preview
            data = await self._client.fetch(preview, max_bytes=PREVIEW_MAX_BYTES)
            photo = BufferedInputFile(data, filename="preview.png")
            caption = status_text(task)
            if status and status[1]:
                await self._bot.edit_message_media(
                    chat_id=task.chat_id,
                    message_id=status[0],
                    media=InputMediaPhoto(media=photo, caption=caption),
                )
                return
            self._posting.add(task.id)
            try:
                message = await self._bot.send_photo(
                    photo=photo, caption=caption, **self._reply(task)
                )
                await self._set_status(task, message.message_id, is_photo=True)
                if status:
                    await self._delete(task.chat_id, status[0])
            finally:
                self._posting.discard(task.id)
            return
        if status is None:
            return
        if status[1]:
            await self._bot.edit_message_caption(
                chat_id=task.chat_id, message_id=status[0], caption=status_text(task)
            )
        else:
            await self._bot.edit_message_text(
                chat_id=task.chat_id, message_id=status[0], text=status_text(task)
            )

    def _stop_progress(self, task_id: int) -> asyncio.Task[None] | None:
        """No more progress for a finished task; return its edit loop, if one runs."""
        # The loop is cancelled, unless it is posting a new status message: that one is left
        # to land, so its id is known when the status message is removed.
        self._ending.add(task_id)
        self._latest.pop(task_id, None)
        loop = self._flush.get(task_id)
        if loop is not None and task_id not in self._posting:
            loop.cancel()
        return loop

    def _forget(self, task_id: int) -> tuple[int, bool] | None:
        """Drop what was kept for a finished task's progress; return its status message."""
        self._ending.discard(task_id)
        self._last_edit.pop(task_id, None)
        self._preview_url.pop(task_id, None)
        return self._status.pop(task_id, None)

    async def _delete(self, chat_id: int, message_id: int) -> None:
        try:
            await self._bot.delete_message(chat_id=chat_id, message_id=message_id)
        except (TelegramBadRequest, TelegramForbiddenError) as error:
            log.debug("Status message %d not deleted: %s", message_id, error.message)

    async def job_finished(self, task: TaskRecord) -> Delivered:
        """Send the result (or the failure) and remove the status message."""
        edit = self._stop_progress(task.id)
        try:
            if edit is not None and task.status != TaskStatus.DONE:
                # A failure is written over the status message: after the last edit, not under.
                await asyncio.wait([edit])
            try:
                with self._speaking(task), priority(Priority.RESULT):
                    delivered = await self._send_outcome(task, self._status_of(task))
            except TelegramForbiddenError as error:
                raise UndeliverableError(error.message) from error
            except TelegramBadRequest as error:
                if "chat not found" in error.message.lower():
                    raise UndeliverableError(error.message) from error
                raise
            if edit is not None:
                await asyncio.wait([edit])
        finally:
            status = self._forget(task.id) or self._status_of(task)
        if status and status[0] != delivered.message_id:
            with priority(Priority.RESULT):
                await self._delete(task.chat_id, status[0])
        return delivered

    async def _send_outcome(
        self,
        task: TaskRecord,
        status: tuple[int, bool] | None,
    ) -> Delivered:
        if task.status != TaskStatus.DONE:
            return await self._send_failure(task, status)
        result = task.result
        if isinstance(result, dict) and "seed" in result:
            return await self._send_text(
                task, f"🌱 Seed: <code>{html.escape(str(result['seed']))}</code>"
            )
        if isinstance(result, dict) and "url" in result:
            return await self._send_media(task, result)
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
        status: tuple[int, bool] | None,
    ) -> Delivered:
        text = failure_text(task)
        if status and not status[1]:
            try:
                await self._bot.edit_message_text(
                    chat_id=task.chat_id, message_id=status[0], text=text
                )
                return Delivered(status[0], None)
            except TelegramBadRequest as error:
                if "not modified" in error.message.lower():
                    # Already showing exactly this (a resend after a lost answer): delivered.
                    return Delivered(status[0], None)
                # The status message is gone (or can't be edited): say it anew.
                log.debug("Failure shown as a new message: %s", error.message)
        return await self._send_text(task, text)

    async def _send_text(self, task: TaskRecord, text: str) -> Delivered:
        message = await self._bot.send_message(
            text=text, reply_markup=result_keyboard(task), **self._reply(task)
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
                animation=FSInputFile(video, filename="animation.mp4"),
                caption=caption,
                reply_markup=keyboard,
                **self._reply(task),
            )
            file_id = message.animation.file_id if message.animation else None
            return Delivered(message.message_id, file_id)
        photo = await self._convert(prepare_photo, source, filename, folder)
        message = await self._bot.send_photo(
            photo=FSInputFile(photo.path, filename=photo.filename),
            caption=caption,
            reply_markup=keyboard,
            **self._reply(task),
        )
        if (
            task.type in UPSCALED_TYPES
            and size <= DOCUMENT_MAX_BYTES
            and (photo.compressed or await self._wants_originals(task.user_id))
        ):
            # A shrunk upscale is wanted at full quality; some users want every original.
            await self._send_original(task, message, FSInputFile(source, filename=filename))
        return Delivered(message.message_id, _photo_file_id(message))

    async def _convert(self, work: Callable[..., T], *args: Any) -> T:
        """Run image work on the media threads."""
        return await asyncio.get_running_loop().run_in_executor(self._converter, work, *args)

    async def _send_original(
        self, task: TaskRecord, photo_message: Message, original: InputFile
    ) -> None:
        kwargs = self._reply(task)
        kwargs["reply_parameters"] = ReplyParameters(
            message_id=photo_message.message_id, allow_sending_without_reply=True
        )
        await self._bot.send_document(document=original, caption=_("Original file"), **kwargs)

    async def close(self) -> None:
        """Cancel progress edits, waiting or under way (their jobs resume after a restart)."""
        pending = list(self._flush.values())
        for loop in pending:
            loop.cancel()
        if pending:
            await asyncio.wait(pending)
        self._converter.shutdown(wait=False, cancel_futures=True)

    async def _wants_originals(self, user_id: int) -> bool:
        if self._user_settings is None:
            return False
        return (await self._user_settings.get(user_id)).originals

    async def show_again(self, task: TaskRecord) -> None:
        """Show a finished task's outcome once more (e.g. a repeated 🌱 Seed press)."""
        with self._speaking(task):
            await self._send_outcome(task, None)


def _photo_file_id(message: Message) -> str | None:
    return message.photo[-1].file_id if message.photo else None
