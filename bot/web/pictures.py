"""Results' images for the gallery Mini App: the full picture and a small thumbnail, cached.

Where the bytes come from: Telegram's own copy first (the delivered photo's `result_file_id`,
through getFile), the API's result URL only when there is no such copy or Telegram can't give
it. userapi's CDN links (Discord attachments) expire after a while, while Telegram keeps a
bot's files for as long as the bot exists, so a result from last month still shows. The file
URL getFile returns carries the bot token: it is downloaded here and only its bytes leave.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from aiogram import Bot
from PIL import Image, ImageOps

from bot.jobs.actions import is_animation
from bot.telegram.media import (
    RESULT_FORMATS,
    ImageTooLargeError,
    WorkersBusyError,
    check_size,
    open_image,
)
from bot.telegram.uploads import WORKERS, ImageProblem, ImageRef, download
from bot.userapi import UserAPIClient, UserAPIError
from storage.tasks import TaskRecord

log = logging.getLogger(__name__)

Size = Literal["thumb", "full"]
# Thumbnails fill a cell of a three-column grid on a phone at 2x density.
THUMB_SIDE = 360
THUMB_QUALITY = 80
# The result itself comes from Telegram's photo (at most 2560 px, a few MB); the CDN fallback
# may be an upscale's original, so it is bounded separately.
MAX_FULL_BYTES = 64 * 1024 * 1024
CACHE_BYTES = 48 * 1024 * 1024
FETCHES_AT_ONCE = 4
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})
MP4 = "video/mp4"


class PictureUnavailable(Exception):
    """Neither Telegram nor the API could give the image (`busy`: the image threads are full)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Picture:
    """An image's bytes and its content type."""

    data: bytes
    content_type: str


def picture_tag(task: TaskRecord, size: Size) -> str:
    """A strong ETag: a task's result never changes once delivered, its file id names it."""
    source = f"{task.id}:{size}:{task.result_file_id or ''}:{_result_url(task)}"
    return '"' + hashlib.sha256(source.encode()).hexdigest()[:32] + '"'


def _result_url(task: TaskRecord) -> str:
    return str(task.result.get("url") or "") if isinstance(task.result, dict) else ""


def make_thumbnail(data: bytes) -> bytes:
    """A JPEG at most THUMB_SIDE px on its longer side (runs on the image threads)."""
    with open_image(io.BytesIO(data), RESULT_FORMATS) as image:
        image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG decodes at a smaller scale
        return _jpeg(ImageOps.exif_transpose(image).convert("RGB"))


def make_video_thumbnail(data: bytes) -> bytes:
    """A JPEG of an MP4's first frame (an Animate result as Telegram keeps it)."""
    # PyAV loads FFmpeg's libraries: only a gallery with animations pays for them.
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            # Bounded before a frame is decoded, as images are.
            check_size(stream.codec_context.width, stream.codec_context.height)
            frame = next(container.decode(stream))
            first = frame.to_image()  # type: ignore[no-untyped-call]
    except (av.FFmpegError, IndexError, StopIteration) as error:
        raise ValueError(f"no frame in the video: {error}") from error
    return _jpeg(first.convert("RGB"))


def _jpeg(image: Image.Image) -> bytes:
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True)
    return out.getvalue()


class Pictures:
    """Fetches results' images (see the module's note on sources) and keeps recent ones."""

    def __init__(self, bot: Bot | None, client: UserAPIClient) -> None:
        self._bot = bot
        self._client = client
        # Downloads at once: each holds a whole image in memory meanwhile.
        self._slots = asyncio.Semaphore(FETCHES_AT_ONCE)
        self._cache: OrderedDict[tuple[int, Size], Picture] = OrderedDict()
        self._cached_bytes = 0

    async def get(self, task: TaskRecord, size: Size) -> Picture:
        """The result's full image or thumbnail; PictureUnavailable if it can't be had."""
        key = (task.id, size)
        picture = self._recall(key)
        if picture is not None:
            return picture
        if size == "thumb":
            full = await self.get(task, "full")
            make = make_video_thumbnail if full.content_type == MP4 else make_thumbnail
            try:
                data = await WORKERS.run(make, full.data)
            except WorkersBusyError as error:
                raise PictureUnavailable("busy") from error
            except (OSError, ValueError, ImageTooLargeError, Image.DecompressionBombError) as err:
                raise PictureUnavailable("not_image") from err
            picture = Picture(data, "image/jpeg")
        else:
            async with self._slots:
                # Another request may have fetched it while this one waited.
                picture = self._recall(key) or await self._fetch(task)
        self._remember(key, picture)
        return picture

    async def _fetch(self, task: TaskRecord) -> Picture:
        if task.result_file_id and self._bot is not None:
            try:
                data = await download(self._bot, ImageRef(task.result_file_id, ""))
            except ImageProblem as problem:
                log.info("Telegram's copy of task %d unavailable: %s", task.id, problem.code)
            else:
                # Delivered results are Telegram photos, which Telegram stores as JPEG, or, for
                # Animate, the MP4 the bot made of Midjourney's animated WebP.
                return Picture(data, MP4 if is_animation(task.result) else "image/jpeg")
        url = _result_url(task)
        if not url:
            raise PictureUnavailable("gone")
        try:
            data = await self._client.fetch(url, max_bytes=MAX_FULL_BYTES)
        except UserAPIError as error:
            log.info("Result of task %d unavailable from the API: %s", task.id, error.message)
            raise PictureUnavailable("gone") from error
        content_type = str(task.result.get("content_type") or "")
        # Only image types: the body is served from the bot's own origin.
        return Picture(data, content_type if content_type in IMAGE_TYPES else "image/png")

    def _recall(self, key: tuple[int, Size]) -> Picture | None:
        picture = self._cache.get(key)
        if picture is not None:
            self._cache.move_to_end(key)
        return picture

    def _remember(self, key: tuple[int, Size], picture: Picture) -> None:
        """Keep recent images (a page of thumbnails, the open picture) within CACHE_BYTES."""
        if len(picture.data) > CACHE_BYTES // 4:
            return
        old = self._cache.pop(key, None)
        self._cached_bytes += len(picture.data) - (len(old.data) if old else 0)
        self._cache[key] = picture
        while self._cached_bytes > CACHE_BYTES:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped.data)
